package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// readKeyFile reads the secret key file at path, creating it (mode 0600)
// with what generate makes when it does not exist. The file appears whole
// or not at all, so that two processes starting on one data directory
// (the server and "ehrledger token") agree on one key. A file others may
// read is refused.
func readKeyFile(path string, generate func() ([]byte, error)) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKeyFile(path, generate); err != nil {
			return nil, err
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %v; it must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	return b, nil
}

// createKeyFile writes generate's key to a temporary file and links it at
// path, which fails harmlessly when another process linked one first.
func createKeyFile(path string, generate func() ([]byte, error)) error {
	b, err := generate()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Chmod(0o600), f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := os.Link(f.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

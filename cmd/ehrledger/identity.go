package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// The server's own address. Access tokens name the base URL they are for
// (their audience) and the embedded authorization server's issuer is
// under it; both come from configuration, never from a request's Host.
// Without --base-url the server is known at http://ADDR, the address it
// listens on, and, when that is a loopback address, at the other loopback
// names of the same port. It records its base URL in the data folder, so
// that "ehrledger token" mints tokens it accepts whatever its address.

// identityFile names the record of the base URL under the data folder.
const identityFile = "server.json"

// identity is what serve records of its address.
type identity struct {
	BaseURL string `json:"base_url"`
}

// identityOf is the base URL and aliases of a server configured with
// base (empty: none) listening at addr.
func identityOf(base string, addr net.Addr) (string, []string) {
	if base != "" {
		return strings.TrimSuffix(base, "/"), nil
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return "http://" + addr.String(), nil
	}
	primary := "http://" + addr.String()
	var aliases []string
	for _, host := range []string{"127.0.0.1", "localhost", "[::1]"} {
		if alias := fmt.Sprintf("http://%s:%d", host, tcp.Port); alias != primary {
			aliases = append(aliases, alias)
		}
	}
	return primary, aliases
}

// recordIdentity writes the server's base URL under the data folder
// (mode 0600, like the key files).
func recordIdentity(data, base string) error {
	b, _ := json.Marshal(identity{BaseURL: base}) // a string always marshals
	tmp := filepath.Join(data, identityFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("recording the base URL: %w", err)
	}
	return os.Rename(tmp, filepath.Join(data, identityFile))
}

// recordedBase is the base URL the server last serving data recorded,
// "" when none did.
func recordedBase(data string) (string, error) {
	b, err := os.ReadFile(filepath.Join(data, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(data, identityFile), err)
	}
	return id.BaseURL, nil
}

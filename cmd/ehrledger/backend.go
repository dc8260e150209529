package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
)

// openBackend opens the database (migrating it) and the KMS, and puts the
// keyring in front of the store, for the commands that work on the
// database without serving it (serve builds a node).
func openBackend(ctx context.Context, cfg serveConfig, log *slog.Logger) (*store.Store, *keys.Keyring, error) {
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	st, err := store.Open(ctx, store.Config{DSN: cfg.dsn(), Logger: log})
	if err != nil {
		return nil, nil, err
	}
	kms, err := openKMS(ctx, cfg)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	kr, err := server.OpenKeys(ctx, st, kms, keys.Options{CacheSize: cfg.KeyCacheSize, TTL: cfg.KeyCacheTTL})
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	log.Info("keys ready", "kms", kms.Name())
	return st, kr, nil
}

func openKMS(ctx context.Context, cfg serveConfig) (keys.KMS, error) {
	if cfg.KMS == "local" {
		return keys.OpenLocal(cfg.keyFile())
	}
	v := cfg.Vault
	return keys.OpenVault(ctx, keys.VaultConfig{
		Address: v.Addr, Namespace: v.Namespace, Token: v.Token, RoleID: v.RoleID, SecretID: v.SecretID,
		CACert: v.CACert, ClientCert: v.ClientCert, ClientKey: v.ClientKey, TLSServerName: v.TLSServerName,
		Mount: v.Mount, Key: v.Key,
	})
}

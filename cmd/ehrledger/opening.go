package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// openingFile is a record's opening as the server answers it
// (/ledger/opening/{n}, /ledger/written/{type}/{id}/{vid}).
type openingFile struct {
	Index   *int64 `json:"index"`
	Record  []byte `json:"record"`
	Opening []byte `json:"opening"`
}

// verifyOpening checks that the record an opening file names is in the
// log and that the opening is the one its leaf commits to, and says what
// it reveals; with versionFile, that the record names exactly that stored
// version and the SHA-256 of its bytes.
func verifyOpening(ctx context.Context, c *ledgerClient, v note.Verifier, origin, file, versionFile string, stdout io.Writer) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the opening: %w", err)
	}
	var of openingFile
	if err := json.Unmarshal(b, &of); err != nil || of.Index == nil || len(of.Record) == 0 || len(of.Opening) == 0 {
		return fmt.Errorf("%s is not a record's opening ({\"index\", \"record\", \"opening\"}, as /ledger/opening/N answers)", file)
	}
	n := *of.Index
	if n < 0 {
		return fmt.Errorf("%s names record %d", file, n)
	}
	var body []byte
	if versionFile != "" {
		if body, err = os.ReadFile(versionFile); err != nil {
			return fmt.Errorf("reading the version: %w", err)
		}
	}
	record, tree, err := proveInclusion(ctx, c, v, origin, n)
	if err != nil {
		return err
	}
	if !bytes.Equal(record, of.Record) {
		return fmt.Errorf("record %d of the log is not the record in %s", n, file)
	}
	rec, err := openRecord(record, of.Opening)
	if err != nil {
		return fmt.Errorf("record %d %w", n, err)
	}
	printRecord(stdout, record)
	fmt.Fprintf(stdout, "record %d is in the log (size %d, root %s), checkpoint signed by %s\n", n, tree.N, tree.Hash, v.Name())
	about := rec.Patient
	if about == "" {
		about = "no patient"
	}
	refs := make([]string, len(rec.Resources))
	for i, r := range rec.Resources {
		refs[i] = r.Ref
	}
	fmt.Fprintf(stdout, "its opening matches its commitment: a %s record of %s about %s, naming %s\n", rec.Type, rec.Time, about, strings.Join(refs, ", "))
	if body == nil {
		return nil
	}
	ref, err := versionRef(body)
	if err != nil {
		return fmt.Errorf("%s: %w", versionFile, err)
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	for _, r := range rec.Resources {
		if r.Ref != ref {
			continue
		}
		if r.SHA256 != digest {
			return fmt.Errorf("record %d names %s with SHA-256 %s, but %s hashes to %s: this is not the version it recorded", n, ref, r.SHA256, versionFile, digest)
		}
		fmt.Fprintf(stdout, "%s (SHA-256 %s) is the version record %d (%s) committed to\n", ref, digest, n, rec.Type)
		return nil
	}
	return fmt.Errorf("record %d does not name %s (it names %s)", n, ref, strings.Join(refs, ", "))
}

// versionRef is the Type/id/_history/version a stored version's JSON says
// it is.
func versionRef(body []byte) (string, error) {
	var res struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Meta         struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return "", fmt.Errorf("is not a resource's JSON: %w", err)
	}
	if res.ResourceType == "" || res.ID == "" || res.Meta.VersionID == "" {
		return "", fmt.Errorf("names no resourceType, id and meta.versionId")
	}
	return res.ResourceType + "/" + res.ID + "/_history/" + res.Meta.VersionID, nil
}

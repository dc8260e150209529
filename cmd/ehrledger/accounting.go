package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The offline check of an accounting of disclosures (GET
// /Patient/{id}/$disclosures, docs/accounting.md): the checkpoint's
// signature and cosignatures, each entry's inclusion proof, and each
// AuditEvent's fields against the ledger record it carries. Like the rest
// of verify, it uses the transparency libraries, not the server's code.

// accountingEvent is what verify reads of an accounting's AuditEvent.
type accountingEvent struct {
	ID        string `json:"id"`
	Extension []struct {
		URL               string `json:"url"`
		ValueInteger      *int64 `json:"valueInteger"`
		ValueString       string `json:"valueString"`
		ValueBase64Binary string `json:"valueBase64Binary"`
	} `json:"extension"`
	Meta struct {
		Security []struct{ Code string } `json:"security"`
	} `json:"meta"`
	Type     struct{ Code string }   `json:"type"`
	Subtype  []struct{ Code string } `json:"subtype"`
	Recorded string                  `json:"recorded"`
	Purpose  []struct {
		Coding []struct{ Code string } `json:"coding"`
	} `json:"purposeOfEvent"`
	Agent []struct {
		Who struct {
			Reference  string `json:"reference"`
			Display    string `json:"display"`
			Identifier struct {
				Value string `json:"value"`
			} `json:"identifier"`
		} `json:"who"`
		Requestor bool `json:"requestor"`
	} `json:"agent"`
	Entity []struct {
		What        struct{ Reference string } `json:"what"`
		Role        struct{ Code string }      `json:"role"`
		Description string                     `json:"description"`
		Detail      []struct {
			Type        string `json:"type"`
			ValueString string `json:"valueString"`
		} `json:"detail"`
	} `json:"entity"`
}

// accountingRecord is what verify reads of a disclosure record: its leaf
// with the opening of the leaf's commitment.
type accountingRecord struct {
	V           int                  `json:"v"`
	Type        string               `json:"type"`
	Time        string               `json:"time"`
	Recipient   *accountingRecipient `json:"recipient"`
	Purpose     string               `json:"purpose"`
	Interaction string               `json:"interaction"`
	BreakGlass  bool                 `json:"break_glass"`
	Commitment  string               `json:"commitment"`
	// From the opening:
	Patient   string
	Resources []accountingResource
	Consents  []struct {
		Ref string `json:"ref"`
	}
}

type accountingRecipient struct {
	Client         string `json:"client"`
	Organization   string `json:"organization"`
	PatientContext bool   `json:"patient_context"`
}

type accountingResource struct {
	Ref    string `json:"ref"`
	SHA256 string `json:"sha256"`
}

// openingDomain prefixes an opening in its commitment's hash
// (docs/ledger.md); an opening is a 32-byte salt and the JSON of what the
// leaf hides.
const openingDomain = "ehrledger record opening v2\x00"

// openRecord reads a leaf of format 2 with the opening of its commitment,
// after checking that the opening is the one the leaf commits to.
func openRecord(leaf, opening []byte) (*accountingRecord, error) {
	var rec accountingRecord
	if err := json.Unmarshal(leaf, &rec); err != nil {
		return nil, fmt.Errorf("is not a record: %w", err)
	}
	if rec.V != 2 {
		return nil, fmt.Errorf("is a record of format %d, not 2", rec.V)
	}
	h := sha256.Sum256(append([]byte(openingDomain), opening...))
	if len(opening) < 32 || base64.RawURLEncoding.EncodeToString(h[:]) != rec.Commitment {
		return nil, errors.New("does not commit to the opening given with it")
	}
	var o struct {
		Patient   string               `json:"patient"`
		Time      string               `json:"time"`
		Recipient *accountingRecipient `json:"recipient"`
		Resources []accountingResource `json:"resources"`
		Consents  []struct {
			Ref string `json:"ref"`
		} `json:"consents"`
	}
	if err := json.Unmarshal(opening[32:], &o); err != nil {
		return nil, fmt.Errorf("has an opening that is not JSON: %w", err)
	}
	if len(o.Time) < 19 || o.Time[:19]+"Z" != rec.Time {
		return nil, fmt.Errorf("has an opening whose time %s is not the leaf's %s", o.Time, rec.Time)
	}
	rec.Patient, rec.Time, rec.Resources, rec.Consents = o.Patient, o.Time, o.Resources, o.Consents
	if o.Recipient != nil {
		rec.Recipient = o.Recipient
	}
	return &rec, nil
}

// verifyAccounting checks every entry of the accounting in file and says
// which fail, and why.
func verifyAccounting(file string, v note.Verifier, cs *cosigners, origin string, stdout io.Writer) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the accounting: %w", err)
	}
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil || b.ResourceType != "Bundle" {
		return fmt.Errorf("%s is not an accounting Bundle: %v", file, err)
	}
	var tree tlog.Tree
	found := false
	for _, e := range b.Entry {
		if e.FullURL != "urn:ehrledger:checkpoint" {
			continue
		}
		var bin struct {
			Data string `json:"data"`
		}
		json.Unmarshal(e.Resource, &bin)
		msg, err := base64.StdEncoding.DecodeString(bin.Data)
		if err != nil {
			return fmt.Errorf("the accounting's checkpoint is not base64: %w", err)
		}
		if tree, err = openCheckpoint(msg, v, origin, "in "+file); err != nil {
			return err
		}
		if err := cs.check(msg, "in "+file); err != nil {
			return err
		}
		found = true
	}
	if !found {
		return fmt.Errorf("%s carries no checkpoint (entry %s)", file, "urn:ehrledger:checkpoint")
	}
	var failed []string
	n, patient := 0, ""
	for i, e := range b.Entry {
		if e.FullURL == "urn:ehrledger:checkpoint" {
			continue
		}
		n++
		about, err := checkAccountingEntry(e.Resource, tree)
		if err == nil && patient != "" && about != patient {
			err = fmt.Errorf("its record is about %s, the accounting's first about %s", about, patient)
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("entry %d (%s): %v", i, e.FullURL, err))
		} else if patient == "" {
			patient = about
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "\n"))
	}
	if patient == "" {
		patient = "the patient"
	}
	fmt.Fprintf(stdout, "all %d disclosures of the accounting are in the log (size %d, root %s), are about %s and match their records\n", n, tree.N, tree.Hash, patient)
	return nil
}

// checkAccountingEntry checks one AuditEvent: its record's inclusion in
// tree, the opening against the record's commitment, and each field
// against the opened record. It returns the patient the record is about.
func checkAccountingEntry(raw json.RawMessage, tree tlog.Tree) (string, error) {
	var ae accountingEvent
	if err := json.Unmarshal(raw, &ae); err != nil {
		return "", fmt.Errorf("not an AuditEvent: %w", err)
	}
	index, record, opening, proofText := int64(-1), []byte(nil), []byte(nil), ""
	for _, x := range ae.Extension {
		switch x.URL {
		case "urn:ehrledger:fhir:ledger-index":
			if x.ValueInteger != nil {
				index = *x.ValueInteger
			}
		case "urn:ehrledger:fhir:ledger-record":
			record, _ = base64.StdEncoding.DecodeString(x.ValueBase64Binary)
		case "urn:ehrledger:fhir:ledger-opening":
			opening, _ = base64.StdEncoding.DecodeString(x.ValueBase64Binary)
		case "urn:ehrledger:fhir:inclusion-proof":
			proofText = x.ValueString
		}
	}
	if index < 0 || record == nil || opening == nil {
		return "", errors.New("no ledger index, record or opening")
	}
	var proof tlog.RecordProof
	for _, p := range strings.Fields(proofText) {
		h, err := base64.StdEncoding.DecodeString(p)
		if err != nil || len(h) != tlog.HashSize {
			return "", errors.New("its inclusion proof is malformed")
		}
		proof = append(proof, tlog.Hash(h))
	}
	if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, tlog.RecordHash(record)); err != nil {
		return "", fmt.Errorf("record %d is not in the log by its inclusion proof: %v", index, err)
	}
	rec, err := openRecord(record, opening)
	if err != nil {
		return "", fmt.Errorf("record %d %w", index, err)
	}
	return rec.Patient, compareEvent(&ae, rec, index)
}

// compareEvent says which field of the AuditEvent differs from what the
// record holds.
func compareEvent(ae *accountingEvent, rec *accountingRecord, index int64) error {
	differs := func(field string, got, want any) error {
		return fmt.Errorf("%s is %v, but record %d says %v", field, got, index, want)
	}
	if rec.Type != "disclosure" {
		return fmt.Errorf("record %d is a %s record, not a disclosure", index, rec.Type)
	}
	if ae.ID != fmt.Sprintf("ledger-%d", index) {
		return differs("id", ae.ID, fmt.Sprintf("ledger-%d", index))
	}
	if ae.Type.Code != "110106" {
		return differs("type", ae.Type.Code, "110106 (Export)")
	}
	got, err1 := time.Parse(time.RFC3339Nano, ae.Recorded)
	want, err2 := time.Parse(time.RFC3339Nano, rec.Time)
	if err1 != nil || err2 != nil || got.Sub(want).Abs() >= time.Millisecond {
		return differs("recorded", ae.Recorded, rec.Time)
	}
	if len(ae.Subtype) == 0 || ae.Subtype[0].Code != rec.Interaction {
		return differs("subtype", ae.Subtype, rec.Interaction)
	}
	purpose := ""
	if len(ae.Purpose) > 0 && len(ae.Purpose[0].Coding) > 0 {
		purpose = ae.Purpose[0].Coding[0].Code
	}
	if purpose != rec.Purpose {
		return differs("purposeOfEvent", purpose, rec.Purpose)
	}
	client, org := "", ""
	if rec.Recipient != nil {
		client, org = rec.Recipient.Client, rec.Recipient.Organization
	}
	var requestor = -1
	for i, a := range ae.Agent {
		if a.Requestor {
			requestor = i
		}
	}
	if requestor < 0 || ae.Agent[requestor].Who.Identifier.Value != client || ae.Agent[requestor].Who.Reference != org {
		return differs("the recipient", ae.Agent, fmt.Sprintf("client %q, organization %q", client, org))
	}
	btg := slices.ContainsFunc(ae.Meta.Security, func(s struct{ Code string }) bool { return s.Code == "BTG" })
	if btg != rec.BreakGlass {
		return differs("the break-glass label", btg, rec.BreakGlass)
	}
	var resources, consents []string
	description, patient := "", ""
	for _, e := range ae.Entity {
		switch e.Role.Code {
		case "1":
			description, patient = e.Description, e.What.Reference
		case "4":
			sha := ""
			for _, d := range e.Detail {
				if d.Type == "sha256" {
					sha = d.ValueString
				}
			}
			resources = append(resources, e.What.Reference+" "+sha)
		case "13":
			consents = append(consents, e.What.Reference)
		}
	}
	var wantRes, wantCons []string
	counts := map[string]int{}
	for _, r := range rec.Resources {
		wantRes = append(wantRes, r.Ref+" "+r.SHA256)
		t, _, _ := strings.Cut(r.Ref, "/")
		counts[t]++
	}
	for _, c := range rec.Consents {
		wantCons = append(wantCons, c.Ref)
	}
	if patient != rec.Patient {
		return differs("the patient", patient, rec.Patient)
	}
	if !slices.Equal(resources, wantRes) {
		return differs("the resources disclosed", resources, wantRes)
	}
	if !slices.Equal(consents, wantCons) {
		return differs("the consents", consents, wantCons)
	}
	types := make([]string, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	slices.Sort(types)
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%d %s", counts[t], t)
	}
	if want := "disclosed: " + strings.Join(parts, ", "); description != want {
		return differs("the description", description, want)
	}
	return nil
}

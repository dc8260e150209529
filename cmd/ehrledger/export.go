package main

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const exportUsage = `Usage:
  ehrledger export --server URL --patient ID [--format json|csv|html] [--start DATE] [--end DATE]
      Fetch the patient's accounting of disclosures (GET /Patient/ID/$disclosures)
      and write it to stdout: json is the Bundle as served, which
      "ehrledger verify --accounting" checks offline; csv a row per
      disclosure; html a printable report. The access token comes from
      --token or EHR_TOKEN (the patient's own app's, or one with the
      ehrledger/admin scope).

Flags:
`

// runExport is "ehrledger export": a patient's accounting for offline use.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ehrledger export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, exportUsage); fs.PrintDefaults() }
	server := fs.String("server", "", "base URL of the FHIR server")
	patient := fs.String("patient", "", "the patient's id")
	format := fs.String("format", "json", "json, csv or html")
	start := fs.String("start", "", "start of the window (FHIR date or dateTime; default: six years ago)")
	end := fs.String("end", "", "end of the window (default: now)")
	token := fs.String("token", os.Getenv("EHR_TOKEN"), "access token (default: $EHR_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	problem := ""
	switch {
	case *server == "" || *patient == "" || fs.NArg() > 0:
		problem = "give --server and --patient"
	case *format != "json" && *format != "csv" && *format != "html":
		problem = fmt.Sprintf("--format must be json, csv or html, not %q", *format)
	case *token == "":
		problem = "give an access token with --token or EHR_TOKEN"
	}
	if problem != "" {
		fmt.Fprintf(stderr, "ehrledger export: %s\n", problem)
		return errUsage
	}
	q := url.Values{}
	if *start != "" {
		q.Set("start", *start)
	}
	if *end != "" {
		q.Set("end", *end)
	}
	u := strings.TrimRight(*server, "/") + "/Patient/" + url.PathEscape(*patient) + "/$disclosures"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	if *format == "json" {
		_, err := stdout.Write(body)
		return err
	}
	acc, err := readAccounting(body)
	if err != nil {
		return err
	}
	acc.Patient = *patient
	if *format == "csv" {
		return acc.writeCSV(stdout)
	}
	return reportTemplate.Execute(stdout, acc)
}

// accounting is an accounting Bundle as the csv and html forms show it.
type accounting struct {
	Patient     string
	Checkpoint  string
	Generated   string
	Disclosures []disclosureRow
}

type disclosureRow struct {
	Index                                     int64
	Date, Name, Client, Organization, Purpose string
	Description, Interaction                  string
	BreakGlass, Exempt                        bool
}

func readAccounting(body []byte) (*accounting, error) {
	var b struct {
		Timestamp string `json:"timestamp"`
		Entry     []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("the accounting is not a Bundle: %w", err)
	}
	acc := &accounting{Generated: b.Timestamp}
	for _, e := range b.Entry {
		if e.FullURL == "urn:ehrledger:checkpoint" {
			var bin struct{ Data string }
			json.Unmarshal(e.Resource, &bin)
			cp, _ := base64.StdEncoding.DecodeString(bin.Data)
			acc.Checkpoint = string(cp)
			continue
		}
		var ae accountingEvent
		var tags struct {
			Meta struct {
				Tag []struct{ Code string } `json:"tag"`
			} `json:"meta"`
		}
		if err := json.Unmarshal(e.Resource, &ae); err != nil {
			return nil, err
		}
		json.Unmarshal(e.Resource, &tags)
		row := disclosureRow{Date: ae.Recorded}
		for _, x := range ae.Extension {
			if x.URL == "urn:ehrledger:fhir:ledger-index" && x.ValueInteger != nil {
				row.Index = *x.ValueInteger
			}
		}
		for _, a := range ae.Agent {
			if a.Requestor {
				row.Name, row.Client, row.Organization = a.Who.Display, a.Who.Identifier.Value, a.Who.Reference
			}
		}
		if len(ae.Purpose) > 0 && len(ae.Purpose[0].Coding) > 0 {
			row.Purpose = ae.Purpose[0].Coding[0].Code
		}
		if len(ae.Subtype) > 0 {
			row.Interaction = ae.Subtype[0].Code
		}
		for _, en := range ae.Entity {
			if en.Role.Code == "1" {
				row.Description = en.Description
			}
		}
		for _, s := range ae.Meta.Security {
			row.BreakGlass = row.BreakGlass || s.Code == "BTG"
		}
		for _, t := range tags.Meta.Tag {
			row.Exempt = row.Exempt || t.Code == "exempt"
		}
		acc.Disclosures = append(acc.Disclosures, row)
	}
	return acc, nil
}

func (a *accounting) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"date", "recipient_name", "recipient_client", "recipient_organization", "purpose", "what", "interaction", "break_glass", "exempt", "ledger_index"})
	for _, d := range a.Disclosures {
		cw.Write([]string{d.Date, d.Name, d.Client, d.Organization, d.Purpose, d.Description, d.Interaction,
			fmt.Sprint(d.BreakGlass), fmt.Sprint(d.Exempt), fmt.Sprint(d.Index)})
	}
	cw.Flush()
	return cw.Error()
}

var reportTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Accounting of disclosures: {{.Patient}}</title>
<style>
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #999; padding: 0.3em 0.5em; text-align: left; font-size: 0.9em; }
.bg { font-weight: bold; color: #a00; }
pre { font-size: 0.8em; white-space: pre-wrap; }
@media print { body { margin: 0; } }
</style></head>
<body>
<h1>Accounting of disclosures</h1>
<p>Patient: <strong>{{.Patient}}</strong>. Generated {{.Generated}}. {{len .Disclosures}} disclosures.</p>
<table>
<thead><tr><th>Date (UTC)</th><th>Recipient</th><th>Purpose</th><th>What was disclosed</th><th>Emergency access</th><th>Exempt from the legal accounting</th><th>Ledger record</th></tr></thead>
<tbody>
{{range .Disclosures}}<tr><td>{{.Date}}</td><td>{{with .Name}}{{.}}, {{end}}{{.Organization}} ({{.Client}})</td><td>{{.Purpose}}</td><td>{{.Description}}</td><td>{{if .BreakGlass}}<span class="bg">break-glass</span>{{end}}</td><td>{{if .Exempt}}yes{{end}}</td><td>{{.Index}}</td></tr>
{{end}}</tbody>
</table>
<h2>How to check this report</h2>
<p>Each row is a record of the provider's disclosure ledger. The JSON form of this accounting carries every record with its inclusion proof to the signed checkpoint below; <code>ehrledger verify --accounting FILE --key KEY</code> checks them without contacting the provider.</p>
<pre>{{.Checkpoint}}</pre>
</body></html>
`))

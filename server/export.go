package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
	"github.com/go-chi/chi/v5"
)

// Bulk Data export (FHIR Bulk Data Access IG v2, docs/export.md): a
// kick-off stores a job and answers 202 at once; a worker (RunExports) on
// any replica runs it in batches of patients, gating each patient's data
// by their consents and recording one disclosure per patient before the
// batch counts as done; the client polls the status URL and downloads the
// ndjson files, sealed at rest with the job's own data key, which is
// erased when the job is deleted or expires.

// DefaultExportRetention is how long an ended export's files are kept.
const DefaultExportRetention = 24 * time.Hour

const (
	// exportBatchPatients is how many patients a batch exports.
	exportBatchPatients = 100
	// exportReadChunk bounds the provider's resources read at once.
	exportReadChunk = 512
	// exportPartBytes is the size at which a type's buffered output is
	// sealed and stored as a part; exportBufferedBytes bounds all
	// buffers together.
	exportPartBytes     = 1 << 20
	exportBufferedBytes = 4 << 20
	// exportFileResources splits a type's output into files of at most
	// this many resources (a file ends only between parts).
	exportFileResources = 50_000
	// exportLease is how long a worker holds a job between two steps
	// before another worker may take it over.
	exportLease = time.Minute
	// exportAttempts is how many times in a row a batch may fail before
	// the job is failed.
	exportAttempts = 5
)

// Levels of an export.
const (
	exportSystem  = "system"
	exportPatient = "patient"
	exportGroup   = "group"
)

// exportSpec is what a job exports and for whom, as stored with it.
type exportSpec struct {
	// Request is the kick-off URL, for the manifest.
	Request string `json:"request"`
	Level   string `json:"level"`
	// Members are the key owners of the group's patients, sorted.
	Members []string `json:"members,omitempty"`
	// Patients, when not nil, are the only patients (key owners, sorted)
	// whose data may be exported: the patient parameter.
	Patients []string `json:"patients,omitempty"`
	Types    []string `json:"types"`
	Since    int64    `json:"since_us,omitempty"`
	// TypeFilters are the _typeFilter queries by type, any of which a
	// resource of the type must meet.
	TypeFilters map[string][]string `json:"type_filters,omitempty"`
	Caller      exportCaller        `json:"caller"`
}

// exportCaller is the caller who kicked an export off, as the job acts
// for them.
type exportCaller struct {
	Open     bool     `json:"open,omitempty"`
	Issuer   string   `json:"iss,omitempty"`
	Subject  string   `json:"sub,omitempty"`
	ClientID string   `json:"client_id,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	Patient  string   `json:"patient,omitempty"`
	FHIRUser string   `json:"fhir_user,omitempty"`
	Actor    string   `json:"actor,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Purposes []string `json:"purposes,omitempty"`
	Purpose  string   `json:"purpose,omitempty"`
}

// exportCallerOf is c as an export job keeps it. The embedded
// authorization server's issuer is kept as its path, since its URL
// follows the server's base (a restart on another address).
func exportCallerOf(c *disclosure.Caller, base string) exportCaller {
	e := exportCaller{Open: c.Open, Purpose: c.Purpose}
	if cl := c.Claims; cl != nil {
		e.Issuer, e.Subject, e.ClientID, e.Scope = cl.Issuer, cl.Subject, cl.ClientID, cl.RawScope
		if e.Issuer == auth.IssuerURL(base) {
			e.Issuer = auth.EmbeddedIssuerPath
		}
		e.Patient, e.FHIRUser, e.Actor, e.Roles, e.Purposes = cl.Patient, cl.FHIRUser, cl.Actor, cl.Roles, cl.PurposeOfUse
	}
	return e
}

func (e exportCaller) caller() *disclosure.Caller {
	if e.Open {
		return &disclosure.Caller{Open: true, Purpose: e.Purpose}
	}
	cl := &auth.Claims{Issuer: e.Issuer, Subject: e.Subject, ClientID: e.ClientID, RawScope: e.Scope, Patient: e.Patient,
		FHIRUser: e.FHIRUser, Actor: e.Actor, Roles: e.Roles, PurposeOfUse: e.Purposes}
	cl.Scopes, cl.IgnoredScopes = auth.ParseScopes(e.Scope)
	return &disclosure.Caller{Claims: cl, Purpose: e.Purpose}
}

// exportSystemLevel is GET or POST /$export: every resource the caller
// may see.
func (s *Server) exportSystemLevel(w http.ResponseWriter, r *http.Request) error {
	return s.kickOff(w, r, &exportSpec{Level: exportSystem})
}

// exportParameter is one parameter of a kick-off by POST.
type exportParameter struct {
	Name           string                      `json:"name"`
	ValueString    *string                     `json:"valueString"`
	ValueInstant   *string                     `json:"valueInstant"`
	ValueReference *struct{ Reference string } `json:"valueReference"`
}

// postedParams reads a kick-off's Parameters body into the query
// parameters a GET would carry, and the patient parameter's patients.
func (s *Server) postedParams(w http.ResponseWriter, r *http.Request) (url.Values, []string, error) {
	_, body, err := s.readBody(w, r, mediaFHIRJSON, mediaJSON, "application/json+fhir")
	if err != nil {
		return nil, nil, err
	}
	in, err := s.parseUnindexed(body, "Parameters")
	if err != nil {
		return nil, nil, err
	}
	var p struct {
		Parameter []exportParameter `json:"parameter"`
	}
	if err := json.Unmarshal(in.res.Bytes(), &p); err != nil {
		return nil, nil, reqErr(errInvalid, "invalid", "the Parameters cannot be read: %v", err)
	}
	params := url.Values{}
	var patients []string
	for i, pp := range p.Parameter {
		switch {
		case pp.Name == "patient" && pp.ValueReference != nil:
			id, ok := strings.CutPrefix(pp.ValueReference.Reference, "Patient/")
			if !ok || id == "" || strings.Contains(id, "/") {
				return nil, nil, reqErr(errInvalid, "invalid", "parameter %d: patient must reference a Patient as Patient/{id}", i)
			}
			patients = append(patients, keys.PatientOwner(id))
		case pp.Name == "_since" && pp.ValueInstant != nil:
			params.Add(pp.Name, *pp.ValueInstant)
		case pp.ValueString != nil:
			params.Add(pp.Name, *pp.ValueString)
		case slices.Contains(exportParams, pp.Name) || pp.Name == "patient":
			return nil, nil, reqErr(errInvalid, "invalid", "parameter %d: %s has the wrong type of value", i, pp.Name)
		default:
			params.Add(pp.Name, "")
		}
	}
	if patients != nil {
		slices.Sort(patients)
		patients = slices.Compact(patients)
	}
	return params, patients, nil
}

// exportPatients is GET or POST /Patient/$export: every patient's data.
func (s *Server) exportPatients(w http.ResponseWriter, r *http.Request) error {
	if typ := chi.URLParam(r, "type"); typ != "Patient" {
		return reqErr(errNotFound, "not-supported", "$export is supported on the system, on Patient and on Group/{id}, not on %s", typ)
	}
	return s.kickOff(w, r, &exportSpec{Level: exportPatient})
}

// exportGroup is GET or POST /Group/{id}/$export: the data of the
// group's patients (its active members that are Patients).
func (s *Server) exportGroup(w http.ResponseWriter, r *http.Request) error {
	typ, id := chi.URLParam(r, "type"), chi.URLParam(r, "id")
	if typ != "Group" {
		return reqErr(errNotFound, "not-supported", "$export is supported on the system, on Patient and on Group/{id}, not on %s/{id}", typ)
	}
	members, err := s.gate.GroupMembers(r.Context(), id)
	if err != nil {
		return err
	}
	return s.kickOff(w, r, &exportSpec{Level: exportGroup, Members: members})
}

// exportParams are the kick-off parameters understood.
var exportParams = []string{"_outputFormat", "_since", "_type", "_typeFilter"}

// typeFilterControls are search parameters a _typeFilter may not carry:
// they shape a result, not select resources.
var typeFilterControls = []string{"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_page", "_contained", "_containedType"}

// kickOff checks an export request (a GET's query, or a POST's
// Parameters), stores its job and answers 202 with the status URL.
func (s *Server) kickOff(w http.ResponseWriter, r *http.Request, spec *exportSpec) error {
	ctx := r.Context()
	if !slices.Contains(preferences(r), "respond-async") {
		return reqErr(errInvalid, "invalid", "$export runs asynchronously: send the header Prefer: respond-async")
	}
	c := callerOf(ctx)
	if c.BreakGlass != "" {
		return forbidden("break-glass access is for one patient's care and cannot start a bulk export")
	}
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		var err error
		if params, spec.Patients, err = s.postedParams(w, r); err != nil {
			return err
		}
		if spec.Patients != nil && spec.Level == exportSystem {
			return reqErr(errInvalid, "invalid", "the patient parameter applies to Patient and Group exports, not to a system export")
		}
	}
	if r.Method == http.MethodGet && params.Has("patient") {
		return reqErr(errInvalid, "invalid", "the patient parameter is taken in a POST kick-off's Parameters only")
	}
	strict := slices.Contains(preferences(r), "handling=strict")
	for k := range params {
		if !slices.Contains(exportParams, k) && strict {
			return reqErr(errInvalid, "not-supported", "$export does not support the parameter %s (supported: %s)", k, strings.Join(exportParams, ", "))
		}
	}
	if f := params.Get("_outputFormat"); f != "" && f != "application/fhir+ndjson" && f != "application/ndjson" && f != "ndjson" {
		return reqErr(errInvalid, "not-supported", "_outputFormat %q is not supported; the output is application/fhir+ndjson", f)
	}
	if v := params.Get("_since"); v != "" {
		t, err := fhir.ParseInstantParam(v)
		if err != nil {
			return reqErr(errInvalid, "invalid", "_since: %v", err)
		}
		spec.Since = t.UnixMicro()
	}
	types, err := exportTypes(ctx, spec.Level, params["_type"])
	if err != nil {
		return err
	}
	spec.Types = types
	if spec.TypeFilters, err = typeFilters(ctx, params["_typeFilter"], types); err != nil {
		return err
	}
	spec.Caller = exportCallerOf(c, s.baseURL(r))
	id := newExportID()
	base := s.baseURL(r)
	spec.Request = base + r.URL.RequestURI()
	// The job's own key seals what it stores, its request included: a
	// Group's members, a filter, may say something of patients.
	dk, err := s.keys.Ensure(ctx, []string{keys.ExportOwner(id)})
	if err != nil {
		return err
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	sealed, err := dk[keys.ExportOwner(id)].Seal(exportAAD(id, "spec", 0), raw)
	if err != nil {
		return err
	}
	job := &store.ExportJob{ID: id, Client: c.ClientID(), Spec: sealed}
	if err := s.store.CreateExport(ctx, job); err != nil {
		return err
	}
	s.log.Info("export: accepted", "job", id, "request_id", requestID(r), "client", c.ClientID(), "level", spec.Level, "types", len(types))
	select {
	case s.exportWake <- struct{}{}:
	default:
	}
	w.Header().Set("Content-Location", base+"/$export-status/"+id)
	s.writeOutcome(w, r, http.StatusAccepted, info("export "+id+" accepted; poll the Content-Location for its status"))
	return nil
}

// exportTypes are the resource types an export covers: those asked for
// in _type (comma-separated, repeatable) or else every type of its level
// (the Patient compartment's for patient and group exports), less those
// the caller's scopes do not reach. A type asked for that the scopes do
// not reach is refused.
func exportTypes(ctx context.Context, level string, asked []string) ([]string, error) {
	all := fhir.ResourceTypes()
	if level != exportSystem {
		all = fhir.PatientDataTypes()
	}
	var want []string
	for _, v := range asked {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			switch {
			case t == "":
			case !fhir.IsResourceType(t):
				return nil, reqErr(errInvalid, "invalid", "_type: %q is not a FHIR R4 resource type", t)
			case !slices.Contains(all, t):
				return nil, reqErr(errInvalid, "invalid", "_type: %s is never patient data, which a %s export covers", t, level)
			case !slices.Contains(want, t):
				want = append(want, t)
			}
		}
	}
	var out []string
	if len(want) > 0 {
		for _, t := range want {
			if err := disclosure.Reach(ctx, t, auth.SearchType); err != nil {
				return nil, err
			}
		}
		out = want
	} else {
		for _, t := range all {
			if disclosure.Reach(ctx, t, auth.SearchType) == nil {
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			return nil, forbidden("the access token's scopes allow searching no resource type this export covers")
		}
	}
	slices.Sort(out)
	return out, nil
}

// typeFilters reads _typeFilter values (Type?query, repeatable and
// comma-separated, each query escaped) into queries by type, refusing
// any a search of its type would refuse: its chains and _has must search
// types the caller may search (and reach, when the job runs, only what
// the caller could read).
func typeFilters(ctx context.Context, values []string, types []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			typ, query, ok := strings.Cut(f, "?")
			if !ok || !fhir.IsResourceType(typ) {
				return nil, reqErr(errInvalid, "invalid", "_typeFilter %q must be a resource type, ? and a search query", f)
			}
			if !slices.Contains(types, typ) {
				return nil, reqErr(errInvalid, "invalid", "_typeFilter %q is for %s, which this export does not cover", f, typ)
			}
			q, err := url.ParseQuery(query)
			if err != nil {
				return nil, reqErr(errInvalid, "invalid", "_typeFilter %q: %v", f, err)
			}
			for k := range q {
				if slices.Contains(typeFilterControls, k) {
					return nil, reqErr(errInvalid, "invalid", "_typeFilter %q: %s shapes a result and cannot filter an export", f, k)
				}
			}
			sq, err := fhir.ParseSearch(typ, q, fhir.SearchOptions{Strict: true})
			if err != nil {
				return nil, err
			}
			if err := disclosure.CheckCriteria(ctx, sq); err != nil {
				return nil, err
			}
			out[typ] = append(out[typ], q.Encode())
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func newExportID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ownExport is the export job the request names, with its key and
// request, when the caller is who kicked it off: the same client, acting
// for the same user, patient and actor, with the same scopes and
// purposes (another token of the client with fewer scopes may not read
// what the export holds). Anyone else gets 404 and learns nothing of it.
func (s *Server) ownExport(r *http.Request) (*store.ExportJob, *keys.DataKey, *exportSpec, error) {
	id := chi.URLParam(r, "job")
	notFound := reqErr(errNotFound, "not-found", "no export %s of this caller; it may have been deleted or expired", id)
	c := callerOf(r.Context())
	j, err := s.store.Export(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && j.Client != c.ClientID() {
		return nil, nil, nil, notFound
	}
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := exportKey(r.Context(), s.keys, j.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	spec, err := openSpec(key, j)
	if err != nil {
		return nil, nil, nil, err
	}
	if !spec.Caller.same(exportCallerOf(c, s.baseURL(r))) {
		return nil, nil, nil, notFound
	}
	return j, key, spec, nil
}

// same reports whether e and o are the same caller as far as what they
// may reach goes (the purpose of one request aside).
func (e exportCaller) same(o exportCaller) bool {
	set := func(xs []string) string {
		xs = slices.Clone(xs)
		slices.Sort(xs)
		return strings.Join(slices.Compact(xs), " ")
	}
	return e.Open == o.Open && e.Issuer == o.Issuer && e.Subject == o.Subject && e.ClientID == o.ClientID &&
		e.Patient == o.Patient && e.FHIRUser == o.FHIRUser && e.Actor == o.Actor &&
		set(strings.Fields(e.Scope)) == set(strings.Fields(o.Scope)) && set(e.Roles) == set(o.Roles) && set(e.Purposes) == set(o.Purposes)
}

// exportStatus is GET /$export-status/{job}: 202 with its progress while
// it runs, then its manifest.
func (s *Server) exportStatus(w http.ResponseWriter, r *http.Request) error {
	j, _, spec, err := s.ownExport(r)
	if err != nil {
		return err
	}
	switch j.Status {
	case store.ExportFailed:
		s.writeOutcome(w, r, http.StatusInternalServerError, []fhir.Issue{{Severity: "error", Code: "exception",
			Diagnostics: "the export failed: " + j.Error}})
		return nil
	case store.ExportCompleted:
	default:
		w.Header().Set("Retry-After", "2")
		w.Header().Set("X-Progress", progressOf(j))
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	index, err := s.store.ExportIndex(r.Context(), j.ID)
	if err != nil {
		return err
	}
	base := s.baseURL(r)
	type output struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int64  `json:"count"`
	}
	m := struct {
		TransactionTime     string   `json:"transactionTime"`
		Request             string   `json:"request"`
		RequiresAccessToken bool     `json:"requiresAccessToken"`
		Output              []output `json:"output"`
		Error               []output `json:"error"`
	}{TransactionTime: fhir.FormatInstant(j.Created), Request: spec.Request, RequiresAccessToken: true, Output: []output{}, Error: []output{}}
	for _, f := range exportFiles(index) {
		m.Output = append(m.Output, output{Type: f.typ, URL: base + "/$export-file/" + j.ID + "/" + f.name(), Count: f.count})
	}
	w.Header().Set("Expires", j.Expires.UTC().Format(http.TimeFormat))
	body, _ := json.Marshal(m) // strings and numbers always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
	return nil
}

// progressOf is a running job's X-Progress.
func progressOf(j *store.ExportJob) string {
	if j.Status == store.ExportAccepted {
		return "queued"
	}
	p := "exported " + strconv.FormatInt(j.Resources, 10) + " resources"
	if j.PatientsTotal > 0 {
		p += " of " + strconv.FormatInt(j.PatientsDone, 10) + "/" + strconv.FormatInt(j.PatientsTotal, 10) + " patients"
	}
	return p
}

// exportFile is one output file: parts first..last of a type.
type exportFile struct {
	typ         string
	n           int // the file's number within its type, from 1
	first, last int64
	count       int64
}

func (f exportFile) name() string { return f.typ + "-" + strconv.Itoa(f.n) + ".ndjson" }

// exportFiles groups a job's parts (by type, then sequence) into files of
// at most exportFileResources resources, or one part when a part holds
// more.
func exportFiles(index []store.ExportPart) []exportFile {
	var out []exportFile
	for _, p := range index {
		last := len(out) - 1
		if last < 0 || out[last].typ != p.Type || out[last].count+int64(p.N) > exportFileResources {
			n := 1
			if last >= 0 && out[last].typ == p.Type {
				n = out[last].n + 1
			}
			out = append(out, exportFile{typ: p.Type, n: n, first: p.Seq})
			last++
		}
		out[last].last = p.Seq
		out[last].count += int64(p.N)
	}
	return out
}

// exportFileGet is GET /$export-file/{job}/{file}: the file's ndjson,
// opened part by part as it is sent.
func (s *Server) exportFileGet(w http.ResponseWriter, r *http.Request) error {
	j, key, _, err := s.ownExport(r)
	if err != nil {
		return err
	}
	name := chi.URLParam(r, "file")
	if j.Status != store.ExportCompleted {
		return reqErr(errNotFound, "not-found", "export %s has no files until it completes", j.ID)
	}
	index, err := s.store.ExportIndex(r.Context(), j.ID)
	if err != nil {
		return err
	}
	files := exportFiles(index)
	i := slices.IndexFunc(files, func(f exportFile) bool { return f.name() == name })
	if i < 0 {
		return reqErr(errNotFound, "not-found", "export %s has no file %s", j.ID, name)
	}
	f := files[i]
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	w.Header().Set("Cache-Control", "no-store")
	started := false
	for seq := f.first - 1; seq < f.last; {
		p, err := s.store.ExportPartAfter(r.Context(), j.ID, f.typ, seq)
		if err == nil {
			var plain []byte
			if plain, err = key.Open(exportAAD(j.ID, f.typ, p.Seq), p.Data); err == nil {
				started = true
				_, err = w.Write(plain)
			}
		}
		if err != nil {
			if !started {
				return err
			}
			// Mid-stream the status is sent: cut the body short so that the
			// client sees a broken transfer, not a short file.
			s.log.Error("export: a file could not be sent whole", "job", j.ID, "file", name, "request_id", requestID(r), "err", err)
			panic(http.ErrAbortHandler)
		}
		seq = p.Seq
	}
	return nil
}

// exportKey is the data key of job; 404 once it is erased.
func exportKey(ctx context.Context, kr *keys.Keyring, job string) (*keys.DataKey, error) {
	dk, err := kr.Keys(ctx, []string{keys.ExportOwner(job)})
	if err != nil {
		return nil, err
	}
	key := dk[keys.ExportOwner(job)]
	if key == nil || key.Erased() {
		return nil, reqErr(errNotFound, "not-found", "export %s was deleted", job)
	}
	return key, nil
}

// openSpec opens the stored spec of job j.
func openSpec(key *keys.DataKey, j *store.ExportJob) (*exportSpec, error) {
	raw, err := key.Open(exportAAD(j.ID, "spec", 0), j.Spec)
	if err != nil {
		return nil, err
	}
	var spec exportSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("server: export %s: the stored request: %w", j.ID, err)
	}
	return &spec, nil
}

// exportDelete is DELETE /$export-status/{job}: the job is cancelled or
// its files deleted, and its key erased.
func (s *Server) exportDelete(w http.ResponseWriter, r *http.Request) error {
	j, _, _, err := s.ownExport(r)
	if err != nil {
		return err
	}
	if err := dropExport(r.Context(), s.store, s.keys, j.ID); err != nil {
		return err
	}
	s.log.Info("export: deleted by its client", "job", j.ID, "request_id", requestID(r))
	s.writeOutcome(w, r, http.StatusAccepted, info("export "+j.ID+" deleted"))
	return nil
}

// dropExport erases job's key, which makes its files unreadable at once,
// then deletes the job and its files.
func dropExport(ctx context.Context, st *store.Store, kr *keys.Keyring, job string) error {
	if _, err := kr.Erase(ctx, keys.ExportOwner(job), nil); err != nil && !errors.Is(err, keys.ErrNoKey) {
		return err
	}
	err := st.DeleteExport(ctx, job)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile
	}
	return err
}

// DropPatientExports deletes every Bulk Data export job that holds, or
// may come to hold, data of the patient with id: every system and Patient
// export, and the Group exports that list them. Crypto-shredding a
// patient thereby leaves no readable copy of their data in an export's
// files either. It returns how many jobs it deleted.
func DropPatientExports(ctx context.Context, st *store.Store, kr *keys.Keyring, id string) (int, error) {
	jobs, err := st.Exports(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, j := range jobs {
		key, err := exportKey(ctx, kr, j.ID)
		if errors.Is(err, errNotFound) {
			continue // being deleted
		}
		if err != nil {
			return n, err
		}
		// A job whose request cannot be read may hold anyone's data.
		if spec, err := openSpec(key, j); err == nil {
			x := exportRun{spec: spec}
			if from := x.listed(); from != nil && !slices.Contains(from, keys.PatientOwner(id)) {
				continue
			}
		}
		if err := dropExport(ctx, st, kr, j.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func exportAAD(job, typ string, seq int64) []byte {
	return []byte("export/" + job + "/" + typ + "/" + strconv.FormatInt(seq, 10))
}

// RunExports runs the export jobs of this and every other replica as they
// come (one at a time), taking over those whose worker stopped, and
// deletes ended jobs once they expire, until ctx ends.
func (s *Server) RunExports(ctx context.Context) {
	worker := newExportID()
	sweep := time.NewTicker(min(time.Minute, s.cfg.ExportRetention))
	defer sweep.Stop()
	s.sweepExports(ctx)
	for {
		j, err := s.store.ClaimExport(ctx, worker, exportLease)
		if err != nil && ctx.Err() == nil {
			s.log.Error("export: claiming a job failed", "err", err)
		}
		if j != nil {
			s.runExport(ctx, worker, j)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.exportWake:
		case <-sweep.C:
			s.sweepExports(ctx)
		case <-time.After(2 * time.Second):
		}
	}
}

// sweepExports deletes the ended jobs that have expired.
func (s *Server) sweepExports(ctx context.Context) {
	ids, err := s.store.ExpiredExports(ctx, s.now())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("export: listing expired jobs failed", "err", err)
		}
		return
	}
	for _, id := range ids {
		if err := dropExport(ctx, s.store, s.keys, id); err != nil {
			s.log.Error("export: deleting an expired job failed", "job", id, "err", err)
			continue
		}
		s.log.Info("export: expired and deleted", "job", id)
	}
}

// runExport runs job j, claimed by worker, batch by batch to its end, or
// until the worker loses it or ctx ends (another worker then resumes it
// from its last batch).
func (s *Server) runExport(ctx context.Context, worker string, j *store.ExportJob) {
	key, err := exportKey(ctx, s.keys, j.ID)
	if errors.Is(err, errNotFound) {
		// Its key is erased: the job was being deleted; finish that.
		if err := dropExport(ctx, s.store, s.keys, j.ID); err != nil && ctx.Err() == nil {
			s.log.Error("export: deleting a job whose key is erased failed", "job", j.ID, "err", err)
		}
		return
	}
	var spec *exportSpec
	if err == nil {
		if spec, err = openSpec(key, j); errors.Is(err, keys.ErrTampered) {
			s.log.Error("export: the stored request failed its integrity check", "job", j.ID)
			s.finishExport(ctx, worker, j, store.ExportFailed, "the stored request failed its integrity check")
			return
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("export: the job cannot start; it is retried once its lease runs out", "job", j.ID, "err", err)
		}
		return
	}
	jctx := disclosure.WithCaller(ctx, spec.Caller.caller())
	x := &exportRun{s: s, worker: worker, job: j, spec: spec, key: key, p: store.ExportProgress{ResumeAt: j.ResumeAt, Batch: j.Batch,
		PatientsDone: j.PatientsDone, PatientsTotal: j.PatientsTotal, Resources: j.Resources}}
	if x.p.Batch == 0 {
		if x.p.PatientsTotal, err = x.patientsTotal(jctx); err != nil {
			if ctx.Err() == nil {
				s.log.Error("export: the job cannot start; it is retried once its lease runs out", "job", j.ID, "err", err)
			}
			return
		}
	}
	s.log.Info("export: running", "job", j.ID, "level", spec.Level, "from_batch", x.p.Batch)
	failures := 0
	logged := time.Now()
	for {
		done, err := x.batch(jctx)
		switch {
		case err == nil:
		case errors.Is(err, store.ErrExportLost):
			s.log.Info("export: stopped: the job was deleted or taken over", "job", j.ID)
			return
		case ctx.Err() != nil:
			s.log.Info("export: interrupted; another worker or the next start resumes it", "job", j.ID, "batch", x.p.Batch)
			return
		default:
			if failures++; failures == exportAttempts {
				s.log.Error("export: failed", "job", j.ID, "batch", x.p.Batch, "err", err)
				s.finishExport(ctx, worker, j, store.ExportFailed, "an internal error stopped it; see the server log")
				return
			}
			s.log.Error("export: a batch failed; retrying", "job", j.ID, "batch", x.p.Batch, "attempt", failures, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(failures) * time.Second):
			}
			continue
		}
		failures = 0
		if done || time.Since(logged) > 5*time.Second {
			logged = time.Now()
			s.log.Info("export: progress", "job", j.ID, "patients_done", x.p.PatientsDone, "patients_total", x.p.PatientsTotal, "resources", x.p.Resources)
		}
		if done {
			s.finishExport(ctx, worker, j, store.ExportCompleted, "")
			return
		}
	}
}

func (s *Server) finishExport(ctx context.Context, worker string, j *store.ExportJob, status, msg string) {
	err := s.store.FinishExport(ctx, j.ID, worker, status, msg, s.now().Add(s.cfg.ExportRetention))
	if err != nil && !errors.Is(err, store.ErrExportLost) {
		s.log.Error("export: the job's end could not be stored", "job", j.ID, "err", err)
		return
	}
	if status == store.ExportCompleted {
		s.log.Info("export: completed", "job", j.ID)
	}
}

// exportRun is a job as a worker runs it.
type exportRun struct {
	s      *Server
	worker string
	job    *store.ExportJob
	spec   *exportSpec
	key    *keys.DataKey
	p      store.ExportProgress
	out    *exportOutput
	// redo says the last batch failed and must first drop what it stored.
	redo bool
}

// The phases of a job, the prefix of its cursor: the patients' data,
// then (for a system export) the provider's own.
const (
	phasePatients = "patients:"
	phaseProvider = "provider:"
)

// listed are the patients (key owners, sorted) the job goes through,
// nil for every patient with data: a Group's members, those the patient
// parameter names, and, for a token with a patient in context, that
// patient alone.
func (x *exportRun) listed() []string {
	var from []string
	if x.spec.Level == exportGroup {
		from = x.spec.Members
	}
	if x.spec.Patients != nil {
		if from == nil {
			from = x.spec.Patients
		} else {
			from = slices.DeleteFunc(slices.Clone(from), func(o string) bool { return !slices.Contains(x.spec.Patients, o) })
		}
	}
	if self := x.spec.Caller.Patient; self != "" {
		own := keys.PatientOwner(self)
		if from != nil && !slices.Contains(from, own) {
			return []string{}
		}
		from = []string{own}
	}
	return from
}

// patientsTotal is how many patients the job will go through.
func (x *exportRun) patientsTotal(ctx context.Context) (int64, error) {
	if from := x.listed(); from != nil {
		return int64(len(from)), nil
	}
	return x.s.store.CountPatientOwners(ctx)
}

// owners are the next patients (key owners) after after.
func (x *exportRun) owners(ctx context.Context, after string) ([]string, error) {
	from := x.listed()
	if from == nil {
		return x.s.store.PatientOwners(ctx, after, exportBatchPatients)
	}
	i, _ := slices.BinarySearch(from, after)
	if i < len(from) && from[i] == after {
		i++
	}
	return from[i:min(i+exportBatchPatients, len(from))], nil
}

func (x *exportRun) since() time.Time {
	if x.spec.Since == 0 {
		return time.Time{}
	}
	return time.UnixMicro(x.spec.Since)
}

// batch exports the next batch and advances the job past it; done when
// nothing is left.
func (x *exportRun) batch(ctx context.Context) (done bool, err error) {
	if x.redo {
		// The last attempt failed after storing some of its parts.
		if err := x.s.store.RedoExportBatch(ctx, x.job.ID, x.worker, exportLease, x.p.Batch); err != nil {
			return false, err
		}
		x.redo = false
	}
	defer func() { x.redo = err != nil }()
	if x.out == nil {
		x.out = &exportOutput{x: x, bufs: map[string]*exportBuf{}}
	}
	out := x.out // its buffers are reused from batch to batch
	out.reset(x.p.Batch * store.ExportPartsPerBatch)
	next := x.p
	next.Batch++
	cursor := x.p.ResumeAt
	switch {
	case cursor == "" || strings.HasPrefix(cursor, phasePatients):
		after := strings.TrimPrefix(cursor, phasePatients)
		owners, err := x.owners(ctx, after)
		if err != nil {
			return false, err
		}
		if len(owners) == 0 {
			if x.spec.Level != exportSystem {
				return true, nil
			}
			next.ResumeAt = phaseProvider
			break
		}
		if err := x.patients(ctx, owners, out); err != nil {
			return false, err
		}
		next.ResumeAt = phasePatients + owners[len(owners)-1]
		next.PatientsDone += int64(len(owners))
	case strings.HasPrefix(cursor, phaseProvider):
		var after store.Key
		after.Type, after.ID, _ = strings.Cut(strings.TrimPrefix(cursor, phaseProvider), "/")
		last, err := x.s.gate.ExportProvider(ctx, after, exportReadChunk, x.gateSpec(), func(v *store.Version) error { return out.add(ctx, v) })
		if err != nil || last == (store.Key{}) {
			return err == nil, err
		}
		next.ResumeAt = phaseProvider + last.Type + "/" + last.ID
	default:
		return false, fmt.Errorf("server: export %s: unknown cursor %q", x.job.ID, cursor)
	}
	if err := out.flush(ctx); err != nil {
		return false, err
	}
	next.Resources += out.count
	if err := x.s.store.AdvanceExport(ctx, x.job.ID, x.worker, exportLease, next); err != nil {
		return false, err
	}
	x.p = next
	return false, nil
}

// patients exports the data of owners through the gate, which records
// one disclosure per patient (and one denial per patient with data
// withheld) before the batch is done.
func (x *exportRun) patients(ctx context.Context, owners []string, out *exportOutput) error {
	return x.s.gate.ExportPatients(ctx, owners, x.gateSpec(), func(v *store.Version) error { return out.add(ctx, v) })
}

// gateSpec is what the job reads, as the gate takes it.
func (x *exportRun) gateSpec() disclosure.ExportSpec {
	spec := disclosure.ExportSpec{Types: x.spec.Types, Since: x.since()}
	for typ, raws := range x.spec.TypeFilters {
		if spec.Filters == nil {
			spec.Filters = map[string][]url.Values{}
		}
		for _, raw := range raws {
			q, _ := url.ParseQuery(raw) // checked at kick-off
			spec.Filters[typ] = append(spec.Filters[typ], q)
		}
	}
	return spec
}

// exportOutput buffers a batch's ndjson by type and stores it as sealed
// parts, a type's buffer once it reaches exportPartBytes, all of them
// once together they reach exportBufferedBytes, and the rest at the end
// of the batch.
type exportOutput struct {
	x        *exportRun
	seq      int64
	bufs     map[string]*exportBuf
	buffered int
	count    int64
}

type exportBuf struct {
	data []byte
	n    int
}

// reset empties the buffers (of a batch that failed, too) for a batch
// whose parts are numbered from seq.
func (o *exportOutput) reset(seq int64) {
	for _, b := range o.bufs {
		b.data, b.n = b.data[:0], 0
	}
	o.seq, o.buffered, o.count = seq, 0, 0
}

func (o *exportOutput) add(ctx context.Context, v *store.Version) error {
	b := o.bufs[v.Type]
	if b == nil {
		b = &exportBuf{}
		o.bufs[v.Type] = b
	}
	before := len(b.data)
	if bytes.ContainsAny(v.Body, "\r\n") {
		var c bytes.Buffer
		if err := json.Compact(&c, v.Body); err != nil {
			return err
		}
		b.data = append(b.data, c.Bytes()...)
	} else {
		b.data = append(b.data, v.Body...)
	}
	b.data = append(b.data, '\n')
	b.n++
	o.count++
	o.buffered += len(b.data) - before
	switch {
	case o.buffered >= exportBufferedBytes:
		return o.flush(ctx)
	case len(b.data) >= exportPartBytes:
		return o.store(ctx, []string{v.Type})
	}
	return nil
}

// flush stores every buffer.
func (o *exportOutput) flush(ctx context.Context) error {
	types := make([]string, 0, len(o.bufs))
	for t, b := range o.bufs {
		if b.n > 0 {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	return o.store(ctx, types)
}

// store seals the buffers of types into parts and stores them.
func (o *exportOutput) store(ctx context.Context, types []string) error {
	if len(types) == 0 {
		return nil
	}
	parts := make([]store.ExportPart, 0, len(types))
	for _, t := range types {
		b := o.bufs[t]
		sealed, err := o.x.key.Seal(exportAAD(o.x.job.ID, t, o.seq), b.data)
		if err != nil {
			return err
		}
		parts = append(parts, store.ExportPart{Type: t, Seq: o.seq, N: b.n, Data: sealed})
		o.seq++
		o.buffered -= len(b.data)
		b.data, b.n = b.data[:0], 0
	}
	return o.x.s.store.AddExportParts(ctx, o.x.job.ID, o.x.worker, exportLease, parts)
}

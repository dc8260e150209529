package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/export"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
	"github.com/go-chi/chi/v5"
)

// The HTTP side of Bulk Data export (docs/export.md): kick-off, status
// and manifest, files, deletion. Package export stores and runs the
// jobs.

// exportSystemLevel is GET or POST /$export: every resource the caller
// may see.
func (s *Server) exportSystemLevel(w http.ResponseWriter, r *http.Request) error {
	return s.kickOff(w, r, &export.Spec{Level: export.System})
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
	return s.kickOff(w, r, &export.Spec{Level: export.Patient})
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
	return s.kickOff(w, r, &export.Spec{Level: export.Group, Members: members})
}

// exportParams are the kick-off parameters understood.
var exportParams = []string{"_outputFormat", "_since", "_type", "_typeFilter"}

// typeFilterControls are search parameters a _typeFilter may not carry:
// they shape a result, not select resources.
var typeFilterControls = []string{"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_page", "_contained", "_containedType"}

// kickOff checks an export request (a GET's query, or a POST's
// Parameters), stores its job and answers 202 with the status URL.
func (s *Server) kickOff(w http.ResponseWriter, r *http.Request, spec *export.Spec) error {
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
		if spec.Patients != nil && spec.Level == export.System {
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
	base := s.baseURL(r)
	spec.Caller = export.CallerOf(c, base)
	spec.Request = base + r.URL.RequestURI()
	id, err := s.exports.Start(ctx, c.ClientID(), spec)
	if err != nil {
		return err
	}
	s.log.Info("export: accepted", "job", id, "request_id", requestID(r), "client", c.ClientID(), "level", spec.Level, "types", len(types))
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
	if level != export.System {
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

// ownExport is the export job the request names, when the caller is who
// kicked it off (export.Jobs.Own); anyone else gets 404 and learns
// nothing of it.
func (s *Server) ownExport(r *http.Request) (*export.Job, error) {
	id := chi.URLParam(r, "job")
	c := callerOf(r.Context())
	j, err := s.exports.Own(r.Context(), id, c.ClientID(), export.CallerOf(c, s.baseURL(r)))
	if errors.Is(err, export.ErrNotFound) {
		return nil, reqErr(errNotFound, "not-found", "no export %s of this caller; it may have been deleted or expired", id)
	}
	return j, err
}

// exportStatus is GET /$export-status/{job}: 202 with its progress while
// it runs, then its manifest.
func (s *Server) exportStatus(w http.ResponseWriter, r *http.Request) error {
	j, err := s.ownExport(r)
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
		w.Header().Set("X-Progress", export.Progress(j.ExportJob))
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	files, err := s.exports.Files(r.Context(), j)
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
	}{TransactionTime: fhir.FormatInstant(j.Created), Request: j.Spec.Request, RequiresAccessToken: true, Output: []output{}, Error: []output{}}
	for _, f := range files {
		m.Output = append(m.Output, output{Type: f.Type, URL: base + "/$export-file/" + j.ID + "/" + f.Name(), Count: f.Count})
	}
	w.Header().Set("Expires", j.Expires.UTC().Format(http.TimeFormat))
	body, _ := json.Marshal(m) // strings and numbers always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
	return nil
}

// exportFileGet is GET /$export-file/{job}/{file}: the file's ndjson,
// opened part by part as it is sent.
func (s *Server) exportFileGet(w http.ResponseWriter, r *http.Request) error {
	j, err := s.ownExport(r)
	if err != nil {
		return err
	}
	name := chi.URLParam(r, "file")
	if j.Status != store.ExportCompleted {
		return reqErr(errNotFound, "not-found", "export %s has no files until it completes", j.ID)
	}
	files, err := s.exports.Files(r.Context(), j)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(files, func(f export.File) bool { return f.Name() == name })
	if i < 0 {
		return reqErr(errNotFound, "not-found", "export %s has no file %s", j.ID, name)
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	w.Header().Set("Cache-Control", "no-store")
	if wrote, err := s.exports.WriteFile(r.Context(), j, files[i], w); err != nil {
		if !wrote {
			return err
		}
		// Mid-stream the status is sent: cut the body short so that the
		// client sees a broken transfer, not a short file.
		s.log.Error("export: a file could not be sent whole", "job", j.ID, "file", name, "request_id", requestID(r), "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// exportDelete is DELETE /$export-status/{job}: the job is cancelled or
// its files deleted, and its key erased.
func (s *Server) exportDelete(w http.ResponseWriter, r *http.Request) error {
	j, err := s.ownExport(r)
	if err != nil {
		return err
	}
	if err := s.exports.Delete(r.Context(), j.ID); err != nil {
		return err
	}
	s.log.Info("export: deleted by its client", "job", j.ID, "request_id", requestID(r))
	s.writeOutcome(w, r, http.StatusAccepted, info("export "+j.ID+" deleted"))
	return nil
}

// RunExports runs the export jobs of this and every other replica as they
// come (export.Jobs.Run), until ctx ends.
func (s *Server) RunExports(ctx context.Context) { s.exports.Run(ctx) }

package server

import (
	"encoding/json"
	"net/http"

	"github.com/ehrledger/ehrledger/fhir"
	"github.com/go-chi/chi/v5"
)

// validate is POST /{type}/$validate and POST /{type}/{id}/$validate. The
// body is the resource itself or a Parameters with a "resource" part (and
// optionally "mode"). It answers 200 with an OperationOutcome listing every
// issue found, or one informational issue when there is none; a body that
// is not JSON at all is a 400.
func (s *Server) validate(w http.ResponseWriter, r *http.Request) error {
	typ, id := chi.URLParam(r, "type"), chi.URLParam(r, "id")
	_, body, err := s.readBody(w, r, mediaFHIRJSON, mediaJSON, "application/json+fhir")
	if err != nil {
		return err
	}
	res, err := fhir.Parse(body, s.limits)
	if err != nil {
		return err
	}
	mode := ""
	if res.Type == "Parameters" && typ != "Parameters" {
		if body, mode, err = unwrapParameters(res); err != nil {
			return err
		}
		if res, err = fhir.Parse(body, s.limits); err != nil {
			return err
		}
	}
	issues := fhir.Validate(body)
	if res.Type != typ {
		issues = append(issues, fhir.Issue{Severity: "error", Code: "invalid", Expression: "resourceType",
			Diagnostics: "resourceType " + res.Type + " does not match the URL's type " + typ})
	}
	if (mode == "update" || id != "") && res.ID != id {
		issues = append(issues, fhir.Issue{Severity: "error", Code: "invalid", Expression: "id",
			Diagnostics: "an update needs the body's id to be " + id + ", not " + res.ID})
	}
	if len(issues) == 0 {
		issues = info("validation found no issues")
	}
	s.writeOutcome(w, r, http.StatusOK, issues)
	return nil
}

// unwrapParameters takes the resource and mode out of $validate's
// Parameters.
func unwrapParameters(p *fhir.Resource) ([]byte, string, error) {
	var params []struct {
		Name      string          `json:"name"`
		Resource  json.RawMessage `json:"resource"`
		ValueCode string          `json:"valueCode"`
	}
	if raw := p.Member("parameter"); raw != nil {
		if err := json.Unmarshal(raw, &params); err != nil {
			return nil, "", &requestError{family: errInvalid, code: "structure", expression: "Parameters.parameter", msg: "parameter must be a list of parameters"}
		}
	}
	var body []byte
	mode := ""
	for _, pp := range params {
		switch pp.Name {
		case "resource":
			body = pp.Resource
		case "mode":
			mode = pp.ValueCode
		}
	}
	if body == nil {
		return nil, "", &requestError{family: errInvalid, code: "required", expression: "Parameters.parameter", msg: "Parameters has no \"resource\" part to validate"}
	}
	switch mode {
	case "", "create", "update", "delete":
	default:
		return nil, "", &requestError{family: errInvalid, code: "value", expression: "Parameters.parameter", msg: "mode must be create, update or delete, not " + mode}
	}
	return body, mode, nil
}

// Package server is ehrledger's FHIR R4 REST API over HTTP: a chi router
// whose handlers implement the FHIR interactions (capabilities, create,
// read, vread, update, patch, delete, their conditional forms, history,
// search, Bundles, $everything, $export, $validate and the ledger's
// endpoints), with the middleware every request passes through (request
// id, structured logging, panic recovery, metrics, body limits,
// authentication) and the single place, writeError, that turns errors
// into HTTP statuses and OperationOutcomes. Of Bulk Data export it holds
// the HTTP side (kick-off, status, manifest, files); the jobs are package
// export's, and crypto-shredding is package erasure's. The map of the
// packages and of who runs what: docs/architecture.md.
//
// Handlers never read patient data from the store: every read, and the
// reads a write makes, go through the gate (package disclosure), which
// decides scopes and consent and records the disclosure before it hands
// back a body (internal/archtest enforces it).
//
// Data flow of a write: handler → read body within limits → fhir.Parse
// (raw JSON kept) → fhir.Validate → disclosure.Gate.InTx (the target
// authorized, conditional criteria matched among what the caller may
// see, the version and its ledger record stored together, retried as a
// whole on conflicts) → the answer's body through the gate (Echo or
// Disclose) → ETag, Location and Last-Modified as Prefer asks.
package server

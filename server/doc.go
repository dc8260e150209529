// Package server is ehrledger's FHIR R4 REST API over HTTP: a chi router
// whose handlers implement the FHIR interactions (capabilities, create,
// read, vread, update, patch, delete, their conditional forms, history and
// $validate), with the middleware every request passes through (request id,
// structured logging, panic recovery, metrics, body limits) and the single
// place, writeError, that turns errors into HTTP statuses and
// OperationOutcomes.
//
// Data flow of a write: handler → read body within limits → fhir.Parse
// (raw JSON kept) → fhir.Validate → store.InTx (version, meta, tokens,
// retried as a whole on conflicts) → answer with ETag, Location and
// Last-Modified as Prefer asks.
package server

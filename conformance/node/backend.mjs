// A SMART Backend Services client as a third party would write it, with
// fhir-kit-client for FHIR and jose for the client assertion. It finds the
// token endpoint through fhir-kit-client's SMART discovery, asks for a
// token with a signed assertion (private_key_jwt, ES384), then reads and
// searches with it. It prints one JSON object of what it saw; the Go test
// (node_test.go) checks it against the server.
//
// Environment: FHIR_BASE, CLIENT_ID, CLIENT_JWK (the private key as a JWK
// with its kid), SCOPE, PATIENT.
import { Client } from 'fhir-kit-client';
import { SignJWT, importJWK } from 'jose';
import { randomUUID } from 'node:crypto';

const { FHIR_BASE, CLIENT_ID, CLIENT_JWK, SCOPE, PATIENT } = process.env;

async function main() {
  const client = new Client({ baseUrl: FHIR_BASE });
  const out = {};

  // Without a token the server refuses.
  try {
    await client.read({ resourceType: 'Patient', id: PATIENT });
    out.anonymous = 'served';
  } catch (err) {
    out.anonymous = err.response?.status ?? String(err);
  }

  const meta = await client.smartAuthMetadata();
  out.tokenUrl = meta.tokenUrl.toString();

  const jwk = JSON.parse(CLIENT_JWK);
  const key = await importJWK(jwk, 'ES384');
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES384', kid: jwk.kid, typ: 'JWT' })
    .setIssuer(CLIENT_ID)
    .setSubject(CLIENT_ID)
    .setAudience(out.tokenUrl)
    .setExpirationTime('4m')
    .setJti(randomUUID())
    .sign(key);
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    scope: SCOPE,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  });
  const res = await fetch(out.tokenUrl, { method: 'POST', body: form });
  const token = await res.json();
  out.tokenStatus = res.status;
  out.scope = token.scope;
  if (res.status !== 200) {
    console.log(JSON.stringify(out));
    return;
  }
  // The same assertion a second time is refused.
  const replay = await fetch(out.tokenUrl, { method: 'POST', body: form });
  out.replayStatus = replay.status;

  client.bearerToken = token.access_token;
  const patient = await client.read({ resourceType: 'Patient', id: PATIENT });
  out.patient = patient.id;
  const bundle = await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${PATIENT}` } });
  out.observations = (bundle.entry ?? []).map((e) => e.resource.id).sort();
  out.total = bundle.total;
  try {
    await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient' } });
    out.create = 'served';
  } catch (err) {
    out.create = err.response?.status ?? String(err);
  }
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

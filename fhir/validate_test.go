package fhir

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidateAcceptsValidResources(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if issues := Validate(readTestdata(t, filepath.Join("valid", filepath.Base(file)))); len(issues) != 0 {
				for _, is := range issues {
					t.Error(is)
				}
			}
		})
	}
}

func TestValidateAcceptsEdgeCases(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"minimal patient", `{"resourceType":"Patient"}`},
		{"resourceType last", `{"id":"a","resourceType":"Patient"}`},
		{"primitive extension without value counts as present", `{"resourceType":"Observation","_status":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]},"code":{"text":"x"}}`},
		{"primitive extension with only an id", `{"resourceType":"Patient","birthDate":"1970","_birthDate":{"id":"b1"}}`},
		{"parallel arrays with nulls on both sides", `{"resourceType":"Patient","name":[{"given":["a",null,"c"],"_given":[null,{"id":"x"},{"id":"y"}]}]}`},
		{"parallel extension array alone", `{"resourceType":"Patient","name":[{"_given":[{"id":"x"}]}]}`},
		{"choice given only as a primitive extension", `{"resourceType":"Patient","_deceasedBoolean":{"extension":[{"url":"http://x","valueString":"s"}]}}`},
		{"choice with value and its own extension", `{"resourceType":"Patient","deceasedDateTime":"2020","_deceasedDateTime":{"id":"d"}}`},
		{"nested extensions", `{"resourceType":"Patient","extension":[{"url":"http://x","extension":[{"url":"a","valueInteger":1},{"url":"b","extension":[{"url":"c","valueBoolean":true}]}]}]}`},
		{"extension value through a primitive extension", `{"resourceType":"Patient","extension":[{"url":"http://x","_valueCode":{"extension":[{"url":"http://y","valueString":"z"}]}}]}`},
		{"local reference to the container", `{"resourceType":"Patient","id":"p","contained":[{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"#"}}]}`},
		{"local reference between contained resources", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"a","partOf":{"reference":"#b"}},{"resourceType":"Organization","id":"b"}]}`},
		{"local reference in an extension", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o"}],"extension":[{"url":"http://x","valueReference":{"reference":"#o"}}]}`},
		{"contained with meta.profile and tag", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","meta":{"profile":["http://x"],"tag":[{"code":"t"}]}}]}`},
		{"unicode escapes", `{"resourceType":"Patient","name":[{"family":"M\u00fcller \ud83d\ude00"}]}`},
		{"decimal exponent in extension", `{"resourceType":"Patient","extension":[{"url":"http://x","valueDecimal":1E-7}]}`},
		{"integer minus zero", `{"resourceType":"Patient","multipleBirthInteger":-0}`},
		{"bundle entry without resource", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/1"}}]}`},
		{"binary", `{"resourceType":"Binary","contentType":"text/plain","data":"aGk="}`},
		{"deep questionnaire items", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"group","item":[{"linkId":"1.1.1","type":"group","item":[{"linkId":"1.1.1.1","type":"string"}]}]}]}]}`},
		{"questionnaire response answer items", `{"resourceType":"QuestionnaireResponse","status":"completed","item":[{"linkId":"1","answer":[{"valueBoolean":true,"item":[{"linkId":"1.1","answer":[{"valueString":"x"}]}]}]}]}`},
		{"parameters parts", `{"resourceType":"Parameters","parameter":[{"name":"a","part":[{"name":"b","part":[{"name":"c","valueString":"d"}]}]}]}`},
		{"codesystem nested concepts", `{"resourceType":"CodeSystem","status":"draft","content":"complete","concept":[{"code":"a","concept":[{"code":"b","concept":[{"code":"c"}]}]}]}`},
		{"timing repeat", `{"resourceType":"MedicationRequest","status":"active","intent":"order","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"},"dosageInstruction":[{"timing":{"repeat":{"boundsDuration":{"value":7,"unit":"d"},"frequency":2,"period":1,"periodUnit":"d","timeOfDay":["08:00:00","20:00:00"]}}}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, is := range Validate([]byte(tc.body)) {
				t.Error(is)
			}
		})
	}
}

// want is an expected issue: its code and expression, and words its
// diagnostics must contain.
type want struct {
	code, expr, diag string
}

func TestValidateReportsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []want
	}{
		// resourceType
		{"missing resourceType", `{"id":"a"}`,
			[]want{{"required", "resourceType", "missing resourceType"}}},
		{"resourceType not a string", `{"resourceType":1}`,
			[]want{{"structure", "resourceType", "must be a JSON string"}}},
		{"resourceType wrong case", `{"resourceType":"patient"}`,
			[]want{{"value", "resourceType", `did you mean "Patient"`}}},
		{"resourceType abstract", `{"resourceType":"DomainResource"}`,
			[]want{{"value", "resourceType", "not a concrete FHIR R4 resource type"}}},
		{"resourceType not R4", `{"resourceType":"SubscriptionStatus"}`,
			[]want{{"value", "resourceType", "unknown resource type"}}},
		{"resourceType twice", `{"resourceType":"Patient","resourceType":"Patient"}`,
			[]want{{"structure", "resourceType", "duplicate"}}},
		{"empty body object", `{}`,
			[]want{{"structure", "", "empty object"}}},

		// unknown elements
		{"unknown element", `{"resourceType":"Patient","foo":1}`,
			[]want{{"structure", "Patient.foo", `unknown element "foo" (not defined for Patient)`}}},
		{"unknown element in a data type", `{"resourceType":"Patient","name":[{"family":"x","foo":1}]}`,
			[]want{{"structure", "Patient.name[0].foo", "not defined for HumanName"}}},
		{"unknown element in a backbone element", `{"resourceType":"Patient","contact":[{"foo":1}]}`,
			[]want{{"structure", "Patient.contact[0].foo", "not defined for Patient.contact"}}},
		{"unknown element in an extension", `{"resourceType":"Patient","extension":[{"url":"http://x","valueString":"a","foo":1}]}`,
			[]want{{"structure", "Patient.extension[0].foo", "not defined for Extension"}}},
		{"unknown element in a contained resource", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","foo":1}]}`,
			[]want{{"structure", "Patient.contained[0].foo", "not defined for Organization"}}},
		{"unknown element in a bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","foo":1}}]}`,
			[]want{{"structure", "Bundle.entry[0].resource.foo", "not defined for Patient"}}},
		{"unknown element in a nested item", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"2","type":"string","foo":1}]}]}`,
			[]want{{"structure", "Questionnaire.item[0].item[0].foo", "not defined for Questionnaire.item"}}},
		{"unknown choice type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueHumanName":{"family":"x"}}`,
			[]want{{"structure", "Observation.valueHumanName", "unknown element"}}},
		{"choice base name", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"value":"x"}`,
			[]want{{"structure", "Observation.value", "unknown element"}}},
		{"resourceType inside a data type", `{"resourceType":"Patient","name":[{"resourceType":"HumanName"}]}`,
			[]want{{"structure", "Patient.name[0].resourceType", "unknown element"}}},
		{"not R4: element added by the source package", `{"resourceType":"Patient","meta":{"project":"x"}}`,
			[]want{{"structure", "Patient.meta.project", "not defined for Meta"}}},
		{"unknown resource type in a bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Foo"}}]}`,
			[]want{{"value", "Bundle.entry[0].resource.resourceType", "unknown resource type"}}},
		{"bundle entry resource without resourceType", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"id":"x"}}]}`,
			[]want{{"required", "Bundle.entry[0].resource.resourceType", "missing resourceType"}}},

		// JSON shape
		{"string for boolean", `{"resourceType":"Patient","active":"true"}`,
			[]want{{"structure", "Patient.active", "expected a JSON boolean for type boolean, found string"}}},
		{"number for date", `{"resourceType":"Patient","birthDate":19741225}`,
			[]want{{"structure", "Patient.birthDate", "expected a JSON string for type date, found number"}}},
		{"string for decimal", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"1.5"}}`,
			[]want{{"structure", "Observation.valueQuantity.value", "expected a JSON number for type decimal"}}},
		{"object for a repeating element", `{"resourceType":"Patient","name":{"family":"x"}}`,
			[]want{{"structure", "Patient.name", "must be a JSON array (cardinality 0..*)"}}},
		{"object for a repeating element is still checked", `{"resourceType":"Patient","name":{"foo":"x"}}`,
			[]want{{"structure", "Patient.name", "must be a JSON array"}, {"structure", "Patient.name.foo", "unknown element"}}},
		{"array for a single element", `{"resourceType":"Patient","gender":["male"]}`,
			[]want{{"structure", "Patient.gender", "must not be a JSON array (cardinality 0..1)"}}},
		{"array of two for a single element", `{"resourceType":"Patient","maritalStatus":[{"text":"a"},{"text":"b"}]}`,
			[]want{{"structure", "Patient.maritalStatus", "must not be a JSON array"}}},
		{"string for a data type", `{"resourceType":"Patient","name":["Peter"]}`,
			[]want{{"structure", "Patient.name[0]", "expected a JSON object for type HumanName, found string"}}},
		{"string for a backbone element", `{"resourceType":"Patient","contact":["x"]}`,
			[]want{{"structure", "Patient.contact[0]", "expected a JSON object for Patient.contact"}}},
		{"array for a contained resource", `{"resourceType":"Patient","contained":[[]]}`,
			[]want{{"structure", "Patient.contained[0]", "expected a resource"}}},
		{"duplicate property", `{"resourceType":"Patient","gender":"male","gender":"female"}`,
			[]want{{"structure", "Patient.gender", `duplicate property "gender"`}}},

		// empty values and null
		{"empty array", `{"resourceType":"Patient","name":[]}`,
			[]want{{"structure", "Patient.name", "empty array"}}},
		{"empty object", `{"resourceType":"Patient","name":[{}]}`,
			[]want{{"structure", "Patient.name[0]", "empty object"}}},
		{"empty object for a single element", `{"resourceType":"Patient","maritalStatus":{}}`,
			[]want{{"structure", "Patient.maritalStatus", "empty object"}}},
		{"empty string", `{"resourceType":"Patient","gender":""}`,
			[]want{{"value", "Patient.gender", "empty string"}}},
		{"null value", `{"resourceType":"Patient","active":null}`,
			[]want{{"structure", "Patient.active", "null is not allowed"}}},
		{"null in an array without extensions", `{"resourceType":"Patient","name":[{"given":["a",null]}]}`,
			[]want{{"structure", "Patient.name[0].given[1]", "null is not allowed here"}}},
		{"null in an array of data types", `{"resourceType":"Patient","name":[null]}`,
			[]want{{"structure", "Patient.name[0]", "null is not allowed here"}}},
		{"null on both sides", `{"resourceType":"Patient","name":[{"given":[null,"b"],"_given":[null,{"id":"x"}]}]}`,
			[]want{{"structure", "Patient.name[0].given[0]", "null is not allowed here"}}},
		{"null in an extension array without values", `{"resourceType":"Patient","name":[{"_given":[null]}]}`,
			[]want{{"structure", "Patient.name[0]._given[0]", "null is not allowed here"}}},

		// cardinality
		{"missing required elements", `{"resourceType":"Observation","id":"x"}`,
			[]want{{"required", "Observation.status", `missing required element "status" (cardinality 1..1)`}, {"required", "Observation.code", "cardinality 1..1"}}},
		{"missing required element in a backbone element", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[{"valueString":"x"}]}`,
			[]want{{"required", "Observation.component[0].code", "missing required element"}}},
		{"missing required element in a data type", `{"resourceType":"Patient","text":{"div":"<div>x</div>"}}`,
			[]want{{"required", "Patient.text.status", "missing required element"}}},
		{"missing required choice", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"string","enableWhen":[{"question":"0","operator":"exists"}]}]}`,
			[]want{{"required", "Questionnaire.item[0].enableWhen[0].answer[x]", `missing required element "answer[x]"`}}},
		{"missing required element in a nested item", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"type":"string"}]}]}`,
			[]want{{"required", "Questionnaire.item[0].item[0].linkId", "missing required element"}}},
		{"missing required element in an excluded include", `{"resourceType":"ValueSet","status":"draft","compose":{"include":[{"system":"http://x"}],"exclude":[{"filter":[{"property":"a","op":"=" }]}]}}`,
			[]want{{"required", "ValueSet.compose.exclude[0].filter[0].value", "missing required element"}}},
		{"two choice types", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","valueBoolean":true}`,
			[]want{{"structure", "Observation.valueBoolean", `only one type of value[x] may be present, found "valueString" and "valueBoolean"`}}},
		{"choice value and another type's extension", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","_valueBoolean":{"id":"b"}}`,
			[]want{{"structure", "Observation._valueBoolean", "only one type of value[x]"}}},

		// primitive formats
		{"impossible date", `{"resourceType":"Patient","birthDate":"2023-02-30"}`,
			[]want{{"value", "Patient.birthDate", `invalid date "2023-02-30": day 30 does not exist in 2023-02`}}},
		{"dateTime without a zone", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2023-01-01T10:00:00"}`,
			[]want{{"value", "Observation.effectiveDateTime", "time zone"}}},
		{"instant without a time", `{"resourceType":"Bundle","type":"collection","timestamp":"2023-01-01"}`,
			[]want{{"value", "Bundle.timestamp", "invalid instant"}}},
		{"integer with a fraction", `{"resourceType":"Patient","multipleBirthInteger":1.5}`,
			[]want{{"value", "Patient.multipleBirthInteger", "whole number"}}},
		{"integer out of range", `{"resourceType":"Patient","multipleBirthInteger":2147483648}`,
			[]want{{"value", "Patient.multipleBirthInteger", "between -2147483648 and 2147483647"}}},
		{"positiveInt zero", `{"resourceType":"Patient","telecom":[{"system":"phone","value":"1","rank":0}]}`,
			[]want{{"value", "Patient.telecom[0].rank", "invalid positiveInt"}}},
		{"unsignedInt negative", `{"resourceType":"Bundle","type":"searchset","total":-1}`,
			[]want{{"value", "Bundle.total", "invalid unsignedInt"}}},
		{"code with double space", `{"resourceType":"Patient","gender":"ma  le"}`,
			[]want{{"value", "Patient.gender", "invalid code"}}},
		{"uri with a space", `{"resourceType":"Patient","implicitRules":"http://x y"}`,
			[]want{{"value", "Patient.implicitRules", "white space"}}},
		{"invalid oid", `{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2","value":"1","_value":{"extension":[{"url":"http://x","valueOid":"1.2.3"}]}}]}`,
			[]want{{"value", "Patient.identifier[0]._value.extension[0].valueOid", "invalid oid"}}},
		{"invalid uuid", `{"resourceType":"Patient","extension":[{"url":"http://x","valueUuid":"urn:uuid:ABC"}]}`,
			[]want{{"value", "Patient.extension[0].valueUuid", "invalid uuid"}}},
		{"invalid base64", `{"resourceType":"Binary","contentType":"text/plain","data":"abc"}`,
			[]want{{"value", "Binary.data", "invalid base64Binary"}}},
		{"invalid time", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueTime":"25:00:00"}`,
			[]want{{"value", "Observation.valueTime", "invalid time"}}},
		{"narrative not a div", `{"resourceType":"Patient","text":{"status":"generated","div":"<p>x</p>"}}`,
			[]want{{"value", "Patient.text.div", "invalid xhtml"}}},
		{"boolean as string in a nested element", `{"resourceType":"Patient","communication":[{"language":{"text":"nl"},"preferred":"yes"}]}`,
			[]want{{"structure", "Patient.communication[0].preferred", "expected a JSON boolean"}}},
		{"invalid resource id", `{"resourceType":"Patient","id":"bad id!"}`,
			[]want{{"value", "Patient.id", "invalid id"}}},
		{"resource id too long", `{"resourceType":"Patient","id":"` + strings.Repeat("x", 65) + `"}`,
			[]want{{"value", "Patient.id", "1 to 64 characters"}}},
		{"resource id not a string", `{"resourceType":"Patient","id":5}`,
			[]want{{"structure", "Patient.id", "expected a JSON string for type id"}}},
		{"invalid contained id", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o o"}]}`,
			[]want{{"value", "Patient.contained[0].id", "invalid id"}}},

		// primitive extensions
		{"primitive extension as an array", `{"resourceType":"Patient","birthDate":"1970","_birthDate":[{"id":"x"}]}`,
			[]want{{"structure", "Patient._birthDate", "must not be a JSON array"}}},
		{"primitive extension as a string", `{"resourceType":"Patient","birthDate":"1970","_birthDate":"x"}`,
			[]want{{"structure", "Patient._birthDate", "expected a JSON object with id and/or extension"}}},
		{"primitive extension with a value", `{"resourceType":"Patient","_birthDate":{"value":"1970"}}`,
			[]want{{"structure", "Patient._birthDate.value", "may hold only id and extension"}}},
		{"primitive extension empty", `{"resourceType":"Patient","birthDate":"1970","_birthDate":{}}`,
			[]want{{"structure", "Patient._birthDate", "empty object"}}},
		{"primitive extension missing url", `{"resourceType":"Patient","_birthDate":{"extension":[{"valueString":"x"}]}}`,
			[]want{{"required", "Patient._birthDate.extension[0].url", "missing required element"}}},
		{"primitive extension on a data type", `{"resourceType":"Patient","name":[{"family":"x"}],"_name":[{"id":"n"}]}`,
			[]want{{"structure", "Patient._name", "not a primitive element"}}},
		{"primitive extension for an unknown element", `{"resourceType":"Patient","_foo":{"id":"x"}}`,
			[]want{{"structure", "Patient._foo", "unknown element"}}},
		{"primitive extension underscore alone", `{"resourceType":"Patient","_":{"id":"x"}}`,
			[]want{{"structure", "Patient._", "unknown element"}}},
		{"parallel arrays of different lengths", `{"resourceType":"Patient","name":[{"given":["a","b"],"_given":[{"id":"x"}]}]}`,
			[]want{{"structure", "Patient.name[0]._given", "must be parallel"}}},
		{"extension array for a repeating element not an array", `{"resourceType":"Patient","name":[{"given":["a"],"_given":{"id":"x"}}]}`,
			[]want{{"structure", "Patient.name[0]._given", "must be a JSON array parallel"}}},
		{"empty extension array", `{"resourceType":"Patient","name":[{"given":["a"],"_given":[]}]}`,
			[]want{{"structure", "Patient.name[0]._given", "empty array"}}},
		{"extension on narrative xhtml", `{"resourceType":"Patient","text":{"status":"generated","div":"<div>x</div>","_div":{"id":"d"}}}`,
			[]want{{"structure", "Patient.text._div", "xhtml cannot have extensions"}}},
		{"duplicate primitive extension", `{"resourceType":"Patient","_birthDate":{"id":"a"},"_birthDate":{"id":"b"}}`,
			[]want{{"structure", "Patient._birthDate", "duplicate property"}}},

		// extensions and ext-1
		{"extension without url", `{"resourceType":"Patient","extension":[{"valueString":"x"}]}`,
			[]want{{"required", "Patient.extension[0].url", `missing required element "url"`}}},
		{"extension with value and extensions", `{"resourceType":"Patient","extension":[{"url":"http://x","valueString":"a","extension":[{"url":"b","valueString":"c"}]}]}`,
			[]want{{"invariant", "Patient.extension[0]", "ext-1"}}},
		{"extension with neither value nor extensions", `{"resourceType":"Patient","extension":[{"url":"http://x"}]}`,
			[]want{{"invariant", "Patient.extension[0]", "ext-1"}}},
		{"nested extension with neither", `{"resourceType":"Patient","modifierExtension":[{"url":"http://x","extension":[{"url":"a"}]}]}`,
			[]want{{"invariant", "Patient.modifierExtension[0].extension[0]", "ext-1"}}},
		{"extension with two value types", `{"resourceType":"Patient","extension":[{"url":"http://x","valueString":"a","valueCode":"b"}]}`,
			[]want{{"structure", "Patient.extension[0].valueCode", "only one type of value[x]"}}},
		{"extension url not a uri", `{"resourceType":"Patient","extension":[{"url":"http://x y","valueString":"a"}]}`,
			[]want{{"value", "Patient.extension[0].url", "invalid uri"}}},

		// contained resources and references
		{"contained resource with contained resources", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","contained":[{"resourceType":"Organization","id":"p"}]}]}`,
			[]want{{"invariant", "Patient.contained[0].contained", "dom-2"}}},
		{"contained resource with versionId and lastUpdated", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","meta":{"versionId":"1","lastUpdated":"2020-01-01T00:00:00Z"}}]}`,
			[]want{{"invariant", "Patient.contained[0].meta.versionId", "dom-4"}, {"invariant", "Patient.contained[0].meta.lastUpdated", "dom-4"}}},
		{"contained resource with security labels", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","meta":{"security":[{"code":"R"}]}}]}`,
			[]want{{"invariant", "Patient.contained[0].meta.security", "dom-5"}}},
		{"contained resource without id", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","name":"x"}]}`,
			[]want{{"business-rule", "Patient.contained[0].id", "must have an id"}}},
		{"unresolved local reference", `{"resourceType":"Patient","managingOrganization":{"reference":"#org"}}`,
			[]want{{"invariant", "Patient.managingOrganization.reference", `ref-1: local reference "#org"`}}},
		{"local reference to a differently named contained resource", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"org1"}],"managingOrganization":{"reference":"#org"}}`,
			[]want{{"invariant", "Patient.managingOrganization.reference", "ref-1"}}},
		{"unresolved local reference in a contained resource", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","partOf":{"reference":"#nope"}}]}`,
			[]want{{"invariant", "Patient.contained[0].partOf.reference", "ref-1"}}},
		{"local reference across bundle entries", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p","contained":[{"resourceType":"Organization","id":"o"}],"managingOrganization":{"reference":"#o"}}},{"resource":{"resourceType":"Patient","managingOrganization":{"reference":"#o"}}}]}`,
			[]want{{"invariant", "Bundle.entry[1].resource.managingOrganization.reference", "ref-1"}}},
		{"contained resource checked against its own type", `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o"}]}`,
			[]want{{"required", "Patient.contained[0].status", "missing required element"}, {"required", "Patient.contained[0].code", "missing required element"}}},
		{"contained unknown type", `{"resourceType":"Patient","contained":[{"resourceType":"Nope","id":"o"}]}`,
			[]want{{"value", "Patient.contained[0].resourceType", "unknown resource type"}}},
		{"parameters resource checked against its own type", `{"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Patient","gender":1}}]}`,
			[]want{{"structure", "Parameters.parameter[0].resource.gender", "expected a JSON string"}}},
		{"batch response outcome checked", `{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"400","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error"}]}}}]}`,
			[]want{{"required", "Bundle.entry[0].response.outcome.issue[0].code", "missing required element"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkIssues(t, Validate([]byte(tc.body)), tc.want)
		})
	}
}

func TestValidateChecksRequiredCodeBindings(t *testing.T) {
	const obs = `"resourceType":"Observation","code":{"text":"x"}`
	for _, tc := range []struct {
		name string
		body string
		want []want
	}{
		{"unknown gender", `{"resourceType":"Patient","gender":"nope"}`,
			[]want{{"code-invalid", "Patient.gender", `invalid code "nope": not in the required value set http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1; expected one of male, female, other, unknown`}}},
		{"codes are case-sensitive", `{"resourceType":"Patient","gender":"Male"}`,
			[]want{{"code-invalid", "Patient.gender", `did you mean "male"?`}}},
		{"unknown observation status", `{` + obs + `,"status":"done"}`,
			[]want{{"code-invalid", "Observation.status", "expected one of registered, preliminary, final, amended, corrected, cancelled, entered-in-error, unknown"}}},
		{"unknown bundle type", `{"resourceType":"Bundle","type":"bundle"}`,
			[]want{{"code-invalid", "Bundle.type", "expected one of document, message, transaction, transaction-response, batch, batch-response, history, searchset, collection"}}},
		{"each item of a repeating code element", `{"resourceType":"SearchParameter","url":"http://x","name":"x","status":"active","description":"x","code":"x","type":"token","base":["Patient","patient","Bot"]}`,
			[]want{{"code-invalid", "SearchParameter.base[1]", `did you mean "Patient"?`}, {"code-invalid", "SearchParameter.base[2]", `invalid code "Bot"`}}},
		{"long code lists are cut", `{"resourceType":"SearchParameter","url":"http://x","name":"x","status":"active","description":"x","code":"x","type":"token","base":["Project"]}`,
			[]want{{"code-invalid", "SearchParameter.base[0]", "Account, ActivityDefinition, AdverseEvent, AllergyIntolerance, Appointment, AppointmentResponse, AuditEvent, Basic, Binary, BiologicallyDerivedProduct, BodyStructure, Bundle, CapabilityStatement, CarePlan, CareTeam, CatalogEntry, ChargeItem, ChargeItemDefinition, Claim, ClaimResponse, ... (148 codes in all)"}}},
		{"in a backbone element", `{"resourceType":"Patient","contact":[{"gender":"f"}]}`,
			[]want{{"code-invalid", "Patient.contact[0].gender", `invalid code "f"`}}},
		{"in a nested backbone element", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"FETCH","url":"Patient"}}]}`,
			[]want{{"code-invalid", "Bundle.entry[0].request.method", "expected one of GET, HEAD, POST, PUT, DELETE, PATCH"}}},
		{"in a data type", `{"resourceType":"Patient","telecom":[{"system":"phone","use":"cell"}],"name":[{"use":"nick"}]}`,
			[]want{{"code-invalid", "Patient.telecom[0].use", `invalid code "cell"`}, {"code-invalid", "Patient.name[0].use", `invalid code "nick"`}}},
		{"in a specialisation of a data type", `{"resourceType":"Condition","subject":{"reference":"Patient/1"},"onsetAge":{"value":1,"comparator":"~"}}`,
			[]want{{"code-invalid", "Condition.onsetAge.comparator", "expected one of <, <=, >=, >"}}},
		{"repeating code in a data type in a backbone element", `{"resourceType":"MedicationRequest","status":"active","intent":"order","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"},"dosageInstruction":[{"timing":{"repeat":{"when":["MORN","HS","lunch"]}}}]}`,
			[]want{{"code-invalid", "MedicationRequest.dosageInstruction[0].timing.repeat.when[2]", "http://hl7.org/fhir/ValueSet/event-timing|4.0.1"}}},
		{"through a content reference", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"2","type":"number"}]}]}`,
			[]want{{"code-invalid", "Questionnaire.item[0].item[0].type", `invalid code "number"`}}},
		{"a grouping concept is not a code", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"question"}]}`,
			[]want{{"code-invalid", "Questionnaire.item[0].type", `invalid code "question"`}}},
		{"in a contained resource", `{"resourceType":"Patient","contained":[{` + obs + `,"id":"o","status":"done"}]}`,
			[]want{{"code-invalid", "Patient.contained[0].status", `invalid code "done"`}}},
		{"in a bundle entry resource", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"x"}}]}`,
			[]want{{"code-invalid", "Bundle.entry[0].resource.gender", `invalid code "x"`}}},
		{"value set of several code systems", `{"resourceType":"OperationDefinition","name":"x","status":"draft","kind":"operation","code":"x","system":false,"type":false,"instance":false,"parameter":[{"name":"a","use":"in","min":0,"max":"1","type":"Bot"}]}`,
			[]want{{"code-invalid", "OperationDefinition.parameter[0].type", "http://hl7.org/fhir/ValueSet/all-types|4.0.1"}}},
		{"value with its own primitive extension", `{"resourceType":"Patient","gender":"x","_gender":{"id":"g"}}`,
			[]want{{"code-invalid", "Patient.gender", `invalid code "x"`}}},
		{"a malformed code is reported once", `{"resourceType":"Patient","gender":" male"}`,
			[]want{{"value", "Patient.gender", "invalid code"}}},
		{"R4's binding, not the one the source package back-ported", `{"resourceType":"ResearchStudy","status":"draft"}`,
			[]want{{"code-invalid", "ResearchStudy.status", "http://hl7.org/fhir/ValueSet/research-study-status|4.0.1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkIssues(t, Validate([]byte(tc.body)), tc.want)
		})
	}
}

func TestValidateAcceptsBoundCodes(t *testing.T) {
	valid := func(t *testing.T, body string) {
		t.Helper()
		for _, is := range Validate([]byte(body)) {
			t.Errorf("%s: %s", body, is)
		}
	}
	for _, g := range []string{"male", "female", "other", "unknown"} {
		valid(t, `{"resourceType":"Patient","gender":"`+g+`"}`)
	}
	for _, s := range []string{"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"} {
		valid(t, `{"resourceType":"Observation","code":{"text":"x"},"status":"`+s+`"}`)
		// R4 binds DetectedIssue.status to the observation statuses.
		valid(t, `{"resourceType":"DetectedIssue","status":"`+s+`"}`)
	}
	for _, b := range []string{"document", "message", "transaction", "transaction-response", "batch", "batch-response", "history", "searchset", "collection"} {
		valid(t, `{"resourceType":"Bundle","type":"`+b+`"}`)
	}
	for _, tc := range []struct{ name, body string }{
		{"every resource type, and the abstract ones, as a search parameter base",
			`{"resourceType":"SearchParameter","url":"http://x","name":"x","status":"active","description":"x","code":"x","type":"token","base":["` +
				strings.Join(append(ResourceTypes(), "Resource", "DomainResource"), `","`) + `"]}`},
		{"data, resource and abstract types for a parameter type",
			`{"resourceType":"OperationDefinition","name":"x","status":"draft","kind":"operation","code":"x","system":false,"type":false,"instance":false,"parameter":[` +
				`{"name":"a","use":"in","min":0,"max":"1","type":"string"},{"name":"b","use":"in","min":0,"max":"1","type":"SimpleQuantity"},` +
				`{"name":"c","use":"out","min":0,"max":"1","type":"Patient"},{"name":"d","use":"out","min":0,"max":"1","type":"Any"}]}`},
		{"codes from two code systems", `{"resourceType":"MedicationRequest","status":"active","intent":"order","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"},"dosageInstruction":[{"timing":{"repeat":{"when":["MORN","HS","AFT.early","PCV"]}}}]}`},
		{"R4's research study status", `{"resourceType":"ResearchStudy","status":"closed-to-accrual-and-intervention"}`},
		{"primitive extension without a value", `{"resourceType":"Patient","_gender":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"masked"}]}}`},
		{"null in a repeating code element", `{"resourceType":"SearchParameter","url":"http://x","name":"x","status":"active","description":"x","code":"x","type":"token","base":["Patient",null],"_base":[null,{"id":"b"}]}`},
		{"extension values are not bound", `{"resourceType":"Patient","extension":[{"url":"http://x","valueCode":"anything"}]}`},
		{"mime types are not enumerable", `{"resourceType":"Binary","contentType":"application/x-made-up"}`},
		{"mime types in a data type", `{"resourceType":"Patient","photo":[{"contentType":"image/x-made-up"}]}`},
		{"currencies are not enumerable", `{"resourceType":"Invoice","status":"draft","totalNet":{"value":1,"currency":"XYZ"}}`},
		{"languages: a preferred binding", `{"resourceType":"Patient","language":"tlh"}`},
		{"languages: a CodeableConcept", `{"resourceType":"Patient","communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"tlh"}]}}]}`},
		{"required binding of a CodeableConcept", `{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/1"},"clinicalStatus":{"coding":[{"code":"nope"}]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) { valid(t, tc.body) })
	}
}

func checkIssues(t *testing.T, got []Issue, wants []want) {
	t.Helper()
	ok := len(got) == len(wants)
	for i := 0; ok && i < len(got); i++ {
		w := wants[i]
		ok = got[i].Code == w.code && got[i].Expression == w.expr && strings.Contains(got[i].Diagnostics, w.diag) && got[i].Severity == "error"
	}
	if !ok {
		t.Errorf("got %d issues:", len(got))
		for _, is := range got {
			t.Errorf("  %s", is)
		}
		t.Errorf("want %d:", len(wants))
		for _, w := range wants {
			t.Errorf("  %s %s: ...%s...", w.code, w.expr, w.diag)
		}
	}
}

func TestValidateReportsEveryProblemInDocumentOrder(t *testing.T) {
	body := readTestdata(t, "invalid/patient-many-errors.json")
	checkIssues(t, Validate(body), []want{
		{"value", "Patient.id", "invalid id"},
		{"structure", "Patient.foo", "unknown element"},
		{"business-rule", "Patient.contained[0].id", "must have an id"},
		{"required", "Patient.contained[0].status", "missing required element"},
		{"required", "Patient.contained[0].code", "missing required element"},
		{"invariant", "Patient.contained[0].meta.lastUpdated", "dom-4"},
		{"invariant", "Patient.extension[0]", "ext-1"},
		{"value", "Patient.extension[1].valueDate", "invalid date"},
		{"structure", "Patient.name[0].given[1]", "null is not allowed here"},
		{"structure", "Patient.name[0].suffix", "must be a JSON array"},
		{"structure", "Patient.name[1]", "empty object"},
		{"structure", "Patient.gender", "must not be a JSON array"},
		{"value", "Patient.birthDate", "day 31 does not exist"},
		{"structure", "Patient._birthDate.value", "may hold only id and extension"},
		{"structure", "Patient.deceasedDateTime", "only one type of deceased[x]"},
		{"required", "Patient.communication[0].language", "missing required element"},
		{"structure", "Patient.communication[0].preferred", "expected a JSON boolean"},
		{"invariant", "Patient.managingOrganization.reference", "ref-1"},
	})
}

func TestValidateFatal(t *testing.T) {
	for _, tc := range []struct{ name, body, diag string }{
		{"not JSON", `{"resourceType":`, "invalid JSON"},
		{"empty", ``, "invalid JSON"},
		{"trailing data", `{"resourceType":"Patient"} x`, "invalid JSON"},
		{"array", `[{"resourceType":"Patient"}]`, "must be a JSON object, found array"},
		{"string", `"Patient"`, "must be a JSON object, found string"},
		{"too deep", strings.Repeat(`{"a":`, vjMaxDepth+1) + "1" + strings.Repeat("}", vjMaxDepth+1), "nested too deeply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Validate([]byte(tc.body))
			if len(got) != 1 || got[0].Severity != "fatal" || got[0].Code != "structure" || got[0].Expression != "" || !strings.Contains(got[0].Diagnostics, tc.diag) {
				t.Errorf("got %v, want one fatal structure issue mentioning %q", got, tc.diag)
			}
		})
	}
}

func TestBusinessRule(t *testing.T) {
	for code, want := range map[string]bool{
		"invariant": true, "business-rule": true,
		"structure": false, "required": false, "value": false, "invalid": false, "code-invalid": false, "": false,
	} {
		if got := BusinessRule(code); got != want {
			t.Errorf("BusinessRule(%q) = %v, want %v", code, got, want)
		}
	}
	// Every code Validate produces is one of those.
	for _, is := range Validate(readTestdata(t, "invalid/patient-many-errors.json")) {
		switch is.Code {
		case "invariant", "business-rule", "structure", "required", "value", "code-invalid":
		default:
			t.Errorf("unexpected code %q", is.Code)
		}
	}
}

func TestValidateKeepsDecimalPrecision(t *testing.T) {
	// A decimal with more digits than float64 holds is valid and is not
	// rounded on the way (the reader keeps number literals as text).
	doc, err := vjParse(`{"v":1.500000000000000000000000001}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.kids(&doc.root)[0].text; got != "1.500000000000000000000000001" {
		t.Errorf("literal = %s", got)
	}
	body := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.500000000000000000000000001}}`
	if issues := Validate([]byte(body)); len(issues) != 0 {
		t.Error(issues)
	}
}

func FuzzValidate(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"resourceType":"Patient","name":[{"given":[null],"_given":[null]}]}`,
		`{"resourceType":"Patient","_birthDate":[],"birthDate":[]}`,
		`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Bundle","entry":[{"resource":{}}]}}]}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Patient","contained":[{"resourceType":"Patient"}]}]}`,
		`{"resourceType":"Extension"}`,
		`{"resourceType":"Observation","valueQuantity":null,"_valueQuantity":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		issues := Validate(body)
		var probe any
		isObject := json.Unmarshal(body, &probe) == nil
		if _, ok := probe.(map[string]any); !ok {
			isObject = false
		}
		for _, is := range issues {
			if is.Code == "" || is.Diagnostics == "" {
				t.Errorf("incomplete issue %+v", is)
			}
			if isObject && is.Severity == "fatal" && !strings.Contains(is.Diagnostics, "UTF-8") && !strings.Contains(is.Diagnostics, "deeply") {
				t.Errorf("fatal issue for a JSON object: %+v", is)
			}
		}
	})
}

func BenchmarkValidatePatient(b *testing.B) {
	benchmarkValidate(b, "valid/patient-typical.json")
}

func BenchmarkValidatePatientRich(b *testing.B) {
	benchmarkValidate(b, "valid/patient-rich.json")
}

func BenchmarkValidateBundle(b *testing.B) {
	benchmarkValidate(b, "valid/bundle-transaction.json")
}

func benchmarkValidate(b *testing.B, name string) {
	body := readTestdata(b, name)
	if issues := Validate(body); len(issues) != 0 {
		b.Fatal(issues)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		Validate(body)
	}
}

// BenchmarkBaselineUnmarshalPatient is the floor validation is compared
// with in BENCHMARKS.md: encoding/json decoding the same Patient into a map,
// which any validator has to match in work.
func BenchmarkBaselineUnmarshalPatient(b *testing.B) {
	body := readTestdata(b, "valid/patient-typical.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
	}
}

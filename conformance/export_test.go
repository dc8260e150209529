package conformance

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestExportSurvivesRestartAndExpires kicks off an export of several
// batches of patients, kills the server at once, and checks that the
// restarted server completes the job with every resource exactly once;
// then that the job and its files are gone after the configured retention.
func TestExportSurvivesRestartAndExpires(t *testing.T) {
	bin := binary(t)
	data := t.TempDir()
	args := []string{"--data", data, "--export-retention", "3s"}
	p := serve(t, bin, args...)
	c := p.client(t)
	const patients = 250 // three batches
	var entries []string
	for i := range patients {
		entries = append(entries,
			fmt.Sprintf(`{"resource":{"resourceType":"Patient","id":"xr-%d"},"request":{"method":"PUT","url":"Patient/xr-%d"}}`, i, i),
			fmt.Sprintf(`{"resource":{"resourceType":"Observation","id":"xr-o-%d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/xr-%d"}},"request":{"method":"PUT","url":"Observation/xr-o-%d"}}`, i, i, i))
	}
	c.do(http.MethodPost, "/", `{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`).want(t, http.StatusOK)

	status := c.kickOff(t, "/Patient/$export?_type=Patient,Observation")
	p.cmd.Process.Kill()
	<-p.done
	p = serve(t, bin, args...)
	c = p.client(t)
	m := c.awaitExport(t, status)
	got := c.download(t, m)
	total := 0
	for _, o := range m.Output {
		total += o.Count
	}
	if total != 2*patients || len(got) != 2*patients {
		t.Fatalf("%d resources in the files, %d distinct, want %d", total, len(got), 2*patients)
	}
	for i := range patients {
		if got[fmt.Sprintf("Patient/xr-%d", i)] == nil || got[fmt.Sprintf("Observation/xr-o-%d", i)] == nil {
			t.Fatalf("patient %d's data is missing", i)
		}
	}
	for _, i := range []int{0, patients - 1} {
		if recs := c.exportRecords(t, fmt.Sprintf("xr-%d", i), 1); len(recs) == 0 || recs[0].Type != "disclosure" || len(recs[0].Resources) != 2 {
			t.Fatalf("patient %d's export records: %+v", i, recs)
		}
	}

	// Past the retention the job and its files are deleted.
	file := strings.TrimPrefix(m.Output[0].URL, c.base)
	deadline := time.Now().Add(30 * time.Second)
	for c.do(http.MethodGet, status, nil).StatusCode != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatal("the export was not deleted after its retention")
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.do(http.MethodGet, file, nil).want(t, http.StatusNotFound)
}

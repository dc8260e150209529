package export

import (
	"context"
	"io"
	"strconv"

	"github.com/ehrledger/ehrledger/store"
)

// Progress says how far a running job is (the status's X-Progress).
func Progress(j *store.ExportJob) string {
	if j.Status == store.ExportAccepted {
		return "queued"
	}
	p := "exported " + strconv.FormatInt(j.Resources, 10) + " resources"
	if j.PatientsTotal > 0 {
		p += " of " + strconv.FormatInt(j.PatientsDone, 10) + "/" + strconv.FormatInt(j.PatientsTotal, 10) + " patients"
	}
	return p
}

// File is one output file: parts first..last of a type.
type File struct {
	Type        string
	N           int // the file's number within its type, from 1
	first, last int64
	Count       int64
}

// Name is the file's name in the job's manifest and URL.
func (f File) Name() string { return f.Type + "-" + strconv.Itoa(f.N) + ".ndjson" }

// files groups a job's parts (by type, then sequence) into files of
// at most fileResources resources, or one part when a part holds
// more.
func files(index []store.ExportPart) []File {
	var out []File
	for _, p := range index {
		last := len(out) - 1
		if last < 0 || out[last].Type != p.Type || out[last].Count+int64(p.N) > fileResources {
			n := 1
			if last >= 0 && out[last].Type == p.Type {
				n = out[last].N + 1
			}
			out = append(out, File{Type: p.Type, N: n, first: p.Seq})
			last++
		}
		out[last].last = p.Seq
		out[last].Count += int64(p.N)
	}
	return out
}

// Files are a completed job's output files.
func (j *Jobs) Files(ctx context.Context, job *Job) ([]File, error) {
	index, err := j.store.ExportIndex(ctx, job.ID)
	if err != nil {
		return nil, err
	}
	return files(index), nil
}

// WriteFile writes file f of job to w, opening it part by part as it is
// sent; wrote says whether anything was written before an error.
func (j *Jobs) WriteFile(ctx context.Context, job *Job, f File, w io.Writer) (wrote bool, err error) {
	for seq := f.first - 1; seq < f.last; {
		p, err := j.store.ExportPartAfter(ctx, job.ID, f.Type, seq)
		if err != nil {
			return wrote, err
		}
		plain, err := job.key.Open(aad(job.ID, f.Type, p.Seq), p.Data)
		if err != nil {
			return wrote, err
		}
		wrote = true
		if _, err := w.Write(plain); err != nil {
			return wrote, err
		}
		seq = p.Seq
	}
	return wrote, nil
}

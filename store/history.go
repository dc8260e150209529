package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// HistoryQuery selects versions newest first: of one resource (Type and
// ID), of one type (Type), or of the whole system (neither).
type HistoryQuery struct {
	Type, ID string
	// Since keeps only versions written at or after it (zero: no bound).
	Since time.Time
	// After continues a listing after the last version of the previous
	// page; versions written since that page was read never shift it.
	After *Cursor
	// Limit is the most versions returned; the caller asks one more than
	// a page to learn whether another page follows.
	Limit int
}

// Cursor is the position of a version in history order, opaque to clients.
type Cursor struct {
	UpdatedUs int64  `json:"t"`
	Type      string `json:"r"`
	ID        string `json:"i"`
	VersionID int64  `json:"v"`
}

// CursorOf returns the position of v.
func CursorOf(v *Version) *Cursor {
	return &Cursor{UpdatedUs: v.Updated.UnixMicro(), Type: v.Type, ID: v.ID, VersionID: v.VersionID}
}

// String encodes the cursor for a URL.
func (c *Cursor) String() string {
	b, _ := json.Marshal(c) // plain fields always marshal
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes a cursor made by String.
func ParseCursor(s string) (*Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, &CriteriaError{Msg: "malformed paging cursor"}
	}
	var c Cursor
	if err := json.Unmarshal(b, &c); err != nil || c.VersionID < 1 {
		return nil, &CriteriaError{Msg: "malformed paging cursor"}
	}
	return &c, nil
}

// History lists versions as q asks, newest first (ties broken by type, id
// and version, all descending).
func (s *Store) History(ctx context.Context, q HistoryQuery) ([]Version, error) {
	var sb strings.Builder
	var args []any
	sb.WriteString(`SELECT ` + versionColumns + ` FROM resource_versions v` + versionKeys + ` WHERE 1 = 1`)
	var order string
	switch {
	case q.ID != "":
		sb.WriteString(` AND v.res_type = ? AND v.res_id = ?`)
		args = append(args, q.Type, q.ID)
		if q.After != nil {
			sb.WriteString(` AND v.version_id < ?`)
			args = append(args, q.After.VersionID)
		}
		order = `v.version_id DESC`
	case q.Type != "":
		sb.WriteString(` AND v.res_type = ?`)
		args = append(args, q.Type)
		if q.After != nil {
			sb.WriteString(` AND (v.updated_us, v.res_id, v.version_id) < (?, ?, ?)`)
			args = append(args, q.After.UpdatedUs, q.After.ID, q.After.VersionID)
		}
		order = `v.updated_us DESC, v.res_id DESC, v.version_id DESC`
	default:
		if q.After != nil {
			sb.WriteString(` AND (v.updated_us, v.res_type, v.res_id, v.version_id) < (?, ?, ?, ?)`)
			args = append(args, q.After.UpdatedUs, q.After.Type, q.After.ID, q.After.VersionID)
		}
		order = `v.updated_us DESC, v.res_type DESC, v.res_id DESC, v.version_id DESC`
	}
	if !q.Since.IsZero() {
		sb.WriteString(` AND v.updated_us >= ?`)
		args = append(args, q.Since.UnixMicro())
	}
	sb.WriteString(` ORDER BY ` + order + ` LIMIT ?`)
	args = append(args, q.Limit)
	out, err := s.outside().queryVersions(ctx, sb.String(), args...)
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: history: %w", err))
	}
	return out, nil
}

package store

import (
	"github.com/ehrledger/ehrledger/fhir"
	"gorm.io/gorm"
)

// PageSQL is the statement that selects one page of q, for EXPLAIN tests.
func (s *Store) PageSQL(q *fhir.SearchQuery) (string, []any, error) {
	where, err := whereClause(q, s.dialect, s.blind)
	if err != nil {
		return "", nil, err
	}
	page, _, _, err := pageQuery(q, where)
	if err != nil {
		return "", nil, err
	}
	return page.sql(), page.args, nil
}

// DB is the store's connection pool, for tests that inspect the schema.
func (s *Store) DB() *gorm.DB { return s.db }

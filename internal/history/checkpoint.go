package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CheckpointTable is the table checkpoints live in, created on first use
// in the database that is read: the position of a read belongs with the
// data it points into, survives a restart of the reader's host, and needs
// no volume.
const CheckpointTable = "qiflow_history_checkpoints"

// Checkpoints stores named positions in CheckpointTable.
type Checkpoints struct {
	db Querier
}

// OpenCheckpoints creates CheckpointTable if it is missing.
func OpenCheckpoints(ctx context.Context, db Querier) (*Checkpoints, error) {
	_, err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+quote(CheckpointTable)+` (
		name       text PRIMARY KEY,
		table_name text NOT NULL,
		time       timestamptz NOT NULL,
		key        text[] NOT NULL,
		rows       bigint NOT NULL,
		updated_at timestamptz NOT NULL DEFAULT now()
	)`)
	if err != nil {
		return nil, fmt.Errorf("history: create %s: %w", CheckpointTable, err)
	}
	return &Checkpoints{db: db}, nil
}

// Checkpoint is a saved position and how many rows had been emitted when
// it was saved.
type Checkpoint struct {
	Name     string
	Table    string
	Position Position
	Rows     int64
	Updated  time.Time
}

// Load returns the checkpoint called name, or nil when there is none.
func (c *Checkpoints) Load(ctx context.Context, name string) (*Checkpoint, error) {
	cp := Checkpoint{Name: name}
	err := c.db.QueryRow(ctx, `SELECT table_name, time, key, rows, updated_at FROM `+quote(CheckpointTable)+` WHERE name = $1`, name).
		Scan(&cp.Table, &cp.Position.Time, &cp.Position.Key, &cp.Rows, &cp.Updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("history: load checkpoint %q: %w", name, err)
	}
	return &cp, nil
}

// Save records pos as the checkpoint called name.
func (c *Checkpoints) Save(ctx context.Context, name, table string, pos Position, rows int64) error {
	key := pos.Key
	if key == nil {
		key = []string{}
	}
	_, err := c.db.Exec(ctx, `INSERT INTO `+quote(CheckpointTable)+` (name, table_name, time, key, rows, updated_at)
		VALUES ($1, $2, $3, $4, $5, now())
		ON CONFLICT (name) DO UPDATE SET table_name = EXCLUDED.table_name, time = EXCLUDED.time,
			key = EXCLUDED.key, rows = EXCLUDED.rows, updated_at = now()`, name, table, pos.Time, key, rows)
	if err != nil {
		return fmt.Errorf("history: save checkpoint %q: %w", name, err)
	}
	return nil
}

// Delete removes the checkpoint called name, if there is one.
func (c *Checkpoints) Delete(ctx context.Context, name string) error {
	if _, err := c.db.Exec(ctx, `DELETE FROM `+quote(CheckpointTable)+` WHERE name = $1`, name); err != nil {
		return fmt.Errorf("history: delete checkpoint %q: %w", name, err)
	}
	return nil
}

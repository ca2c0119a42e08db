package result_test

import (
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/qicore/qiflow/internal/result"
)

// A sink decides per message what to do with a failed write: retry it,
// dead-letter it with its reason, or stop the pipeline.
func Example() {
	defer result.ResetHalt()
	// One scope per stream; in a plugin: result.ScopeOf(mgr).
	var stream sync.Map
	scope := result.ScopeOf(storeFunc(stream.LoadOrStore))

	failures := []error{
		fmt.Errorf("copy into crypto_prices: %w",
			&pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}),
		result.Businessf("validation", "usdPrice must be > 0, got %s", "-1").With("coinId", "bitcoin"),
		fmt.Errorf("copy into crypto_prices: %w",
			&pgconn.PgError{Severity: "ERROR", Code: "22003", Message: "numeric field overflow", ColumnName: "usd_price"}),
		fmt.Errorf("commit offsets: %w", kerr.GroupAuthorizationFailed),
		errors.New("index out of range"),
	}

	for _, err := range failures {
		e := result.Classify(err)
		switch e.Action() {
		case result.Retry:
			fmt.Printf("retry with backoff: %s %s\n", e.Category, e.Code)
		case result.DeadLetter:
			// Headers qiflow-error-category, qiflow-error-code and qiflow-error.
			fmt.Printf("dead-letter: %s | %s | %s\n", e.Category, e.Code, e)
		case result.Stop:
			scope.Halt(e)
			fmt.Printf("stop: %s\n", e)
		}
	}
	fmt.Println("exit non-zero because:", result.Halted())

	// Output:
	// retry with backoff: EXTERNAL 57P01
	// dead-letter: BUSINESS | validation | BUSINESS validation: usdPrice must be > 0, got -1 (coinId=bitcoin)
	// dead-letter: BUSINESS | 22003 | BUSINESS 22003 (column=usd_price): copy into crypto_prices: ERROR: numeric field overflow (SQLSTATE 22003)
	// stop: SECURITY GROUP_AUTHORIZATION_FAILED: commit offsets: GROUP_AUTHORIZATION_FAILED: Not authorized to access group: Group authorization failed.
	// retry with backoff: SYSTEM unknown
	// exit non-zero because: SECURITY GROUP_AUTHORIZATION_FAILED: commit offsets: GROUP_AUTHORIZATION_FAILED: Not authorized to access group: Group authorization failed.
}

// storeFunc adapts a LoadOrStore function to result.GenericStore.
type storeFunc func(key, value any) (any, bool)

func (f storeFunc) GetOrSetGeneric(key, value any) (any, bool) { return f(key, value) }
func (f storeFunc) StreamID() string                           { return "" }

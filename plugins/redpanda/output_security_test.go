package redpanda

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qicore/qiflow/internal/testenv"
)

// exitHalted is qiflow's exit code for a stream halted on a fatal error.
const exitHalted = 3

// rejectSCRAMUser makes broker answer a SCRAM login as user with
// SASL_AUTHENTICATION_FAILED, as Kafka and Redpanda answer rejected
// credentials; kfake alone would close the connection, which a client
// cannot tell from a network fault. (internal/testenv does the same for
// PLAIN logins with a wrong password.)
func rejectSCRAMUser(broker *testenv.Broker, user string) {
	c := broker.Cluster()
	first := []byte("n,,n=" + user + ",")
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		auth := req.(*kmsg.SASLAuthenticateRequest)
		if !bytes.HasPrefix(auth.SASLAuthBytes, first) {
			return nil, nil, false
		}
		resp := auth.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: invalid credentials"
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
}

// A SECURITY error in any component stops the stream, and `qiflow run`
// exits 3 within a bounded time: with the timescale output's dead-letter
// redpanda output rejected alone, or together with the input. PLAIN logins
// use a wrong password, SCRAM logins a user the broker does not know.
func TestRejectedDeadLetterCredentialsStopTheStream(t *testing.T) {
	const (
		haltBound  = 2 * time.Second // from the first halt line to the exit
		startBound = 20 * time.Second
	)
	dsn := testenv.Database(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), `CREATE TABLE lines (v TEXT PRIMARY KEY)`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))

	config := func(seeds, mechanism, inUser, inPass, dlUser, dlPass string) string {
		return fmt.Sprintf(`
input:
  redpanda:
    seed_brokers: [ %[1]q ]
    topics: [ in ]
    consumer_group: g
    sasl: { mechanism: %[2]s, user: %[3]q, password: %[4]q }
output:
  timescale:
    dsn: %[7]q
    table: lines
    mapping: 'root.v = content().string()'
    dead_letter:
      redpanda:
        seed_brokers: [ %[1]q ]
        topic: in.dlq
        sasl: { mechanism: %[2]s, user: %[5]q, password: %[6]q }
`, seeds, mechanism, inUser, inPass, dlUser, dlPass, dsn)
	}
	for _, mechanism := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		for _, onlyDeadLetter := range []bool{true, false} {
			name := mechanism + "/input and dead letter rejected"
			if onlyDeadLetter {
				name = mechanism + "/only the dead letter rejected"
			}
			t.Run(name, func(t *testing.T) {
				broker := testenv.NewBroker(t, testenv.WithSASL(mechanism, "qiflow", "right"), testenv.WithTopics(1, "in", "in.dlq"))
				badUser, badPass := "qiflow", "wrong-secret"
				if mechanism != "PLAIN" {
					badUser, badPass = "intruder", "wrong-secret"
					rejectSCRAMUser(broker, badUser)
				}
				broker.Produce(t, "in", &kgo.Record{Value: []byte("one")})
				inUser, inPass := badUser, badPass
				if onlyDeadLetter {
					inUser, inPass = "qiflow", "right"
				}
				started := time.Now()
				proc := runQiflow(t, config(broker.SeedList(), mechanism, inUser, inPass, badUser, badPass))
				proc.WaitForOutput(t, "(SECURITY)", startBound)
				halted := time.Now()
				code := waitExit(t, proc, "after the first SECURITY line", halted, haltBound)
				t.Logf("exit %v after start", time.Since(started).Round(time.Millisecond))
				out := proc.Output()
				assert.Equal(t, exitHalted, code, "%s", out)
				if onlyDeadLetter {
					assert.Contains(t, out, "Stopping the redpanda output (SECURITY)", "the dead-letter output says why")
				}
				assert.Contains(t, out, "SASL_AUTHENTICATION_FAILED")
				assert.NotContains(t, out, "wrong-secret")
				assert.Zero(t, strings.Count(out, "Failed to connect to redpanda"), "rejected credentials are not retried:\n%s", out)
			})
		}
	}
}

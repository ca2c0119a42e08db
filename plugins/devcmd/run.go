package devcmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qicore/qiflow/internal/profile"
)

// run brings the demo up, shows the summary until ctx is done, and tears
// everything down in reverse order: feed, ingest pipelines, broker,
// database.
func run(ctx context.Context, o options) (err error) {
	dir := o.pipelines
	for _, name := range requiredFiles(o.ingest) {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pipelines directory %s (--%s): %w", dir, flagPipelines, err)
		}
	}

	svc, err := startServices(ctx, o)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, svc.close()) }()
	svc.describe(o.out)
	if o.external != "" {
		fmt.Fprintf(o.out, "WARNING:  %s: this run is not isolated. The feed writes synthetic data into the topics of %s\n"+
			"          on the broker above, the pipelines write it into the tables of the database above, and they join\n"+
			"          the consumer groups %s.\n",
			o.external, topicsFile, strings.Join(groups(o.ingest), ", "))
	} else if os.Getenv("REDPANDA_BROKERS") != "" || os.Getenv("DATABASE_URL") != "" {
		fmt.Fprintf(o.out, "note:     REDPANDA_BROKERS and DATABASE_URL are ignored; --%s uses them\n", flagUseEnv)
	}

	if err := createTopics(ctx, svc.adm, filepath.Join(dir, topicsFile), o.out); err != nil {
		return err
	}
	if err := applySchema(ctx, svc.dsn, filepath.Join(dir, schemaFile), o.out); err != nil {
		return err
	}

	restore, err := useServices(svc)
	if err != nil {
		return err
	}
	defer restore()
	// The summary's baseline is taken before the feed starts, so that it
	// counts only what this run produces.
	sum, err := newSummary(ctx, svc.adm, svc.dsn, o)
	if err != nil {
		return err
	}
	defer sum.close()
	env := map[string]string{"REDPANDA_BROKERS": strings.Join(svc.seeds, ","), "DATABASE_URL": svc.dsn}
	registryURL := ""
	if o.format == formatAvro {
		reg, regErr := startRegistry()
		if regErr != nil {
			return regErr
		}
		defer func() { err = errors.Join(err, reg.close()) }()
		registryURL = reg.url
		fmt.Fprintf(o.out, "registry: in-process srfake at %s; prices are Avro on %s (subject %s)\n", reg.url, avroPriceTopic, avroPriceSubject)
	}
	p, err := startPipelines(o.pipelines, o, env, registryURL)
	if err != nil {
		return err
	}
	bad := ""
	if o.badShare > 0 {
		bad = fmt.Sprintf(" with %g%% bad messages", 100*o.badShare)
	}
	fmt.Fprintf(o.out, "running:  %s at %d msg/s%s, and the ingest pipelines; Ctrl-C stops\n", feedFile, o.rate, bad)

	ticker := time.NewTicker(o.interval)
	defer ticker.Stop()
	var failed error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case failed = <-p.failed:
			break loop
		case <-ticker.C:
			sum.show(ctx)
		}
	}
	fmt.Fprintln(o.out, "stopping: draining the pipelines")
	started := time.Now()
	stopErr := p.stop(sum.caughtUp)
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	sum.final(final, time.Since(started))
	return errors.Join(failed, stopErr)
}

// runServices starts only the broker and the database, prints how to use
// them, and waits for ctx.
func runServices(ctx context.Context, o options) (err error) {
	svc, err := startServices(ctx, o)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, svc.close()) }()
	svc.describe(o.out)
	fmt.Fprintf(o.out, "\nPoint qiflow at them:\n\n  export REDPANDA_BROKERS=%s DATABASE_URL='%s'\n\n"+
		"Nothing is created yet: `qiflow schema apply` and `qiflow topics apply` do that.\n"+
		"Ctrl-C stops both services and removes their data.\n", strings.Join(svc.seeds, ","), svc.dsn)
	<-ctx.Done()
	fmt.Fprintln(o.out, "stopping: the broker and the database")
	return nil
}

// useServices installs a profile that points the pipelines' connections,
// which they take from the profile, at the services the command started or
// was given. An in-process broker speaks neither TLS nor SASL, whatever
// QIFLOW_ENV says.
func useServices(svc *services) (restore func(), err error) {
	current, err := profile.Current()
	if err != nil {
		return nil, err
	}
	dev := *current
	dev.Redpanda.Brokers = svc.seeds
	dev.Database.URL = profile.Secret(svc.dsn)
	dev.Database.Password, dev.Database.PasswordFile = "", "" // the DSN says all
	if svc.broker != nil {
		dev.Redpanda.TLS, dev.Redpanda.SASL = profile.TLS{}, profile.SASL{Mechanism: profile.MechanismNone}
	}
	return profile.Set(&dev), nil
}

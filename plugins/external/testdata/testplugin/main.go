// Command testplugin is a qiflow plugin for the external processor's tests.
// It prefixes each payload with "processed:" and records its PID in the
// metadata key plugin_pid; its config chooses how it misbehaves.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/qicore/qiflow/pkg/pluginsdk"
)

type config struct {
	// CrashOnBatch exits the process abruptly on its n-th batch, once: a
	// marker file in MarkerDir lets the restarted process carry on.
	CrashOnBatch int `json:"crash_on_batch"`
	// HangOnBatch blocks forever on the process's n-th batch, once. With
	// CrashOnBatch set, only a process started after the crash hangs, so
	// that a batch running beside the crashing one cannot hang the process
	// that is about to exit anyway.
	HangOnBatch int `json:"hang_on_batch"`
	// CrashWhileExists exits on every batch while this file exists.
	CrashWhileExists string `json:"crash_while_exists"`
	// ExitOn exits the process abruptly when a payload contains it.
	ExitOn string `json:"exit_on"`
	// HangOn blocks forever when a payload contains it.
	HangOn string `json:"hang_on"`
	// UnhealthyOnCheck fails the process's n-th health check, once.
	UnhealthyOnCheck int `json:"unhealthy_on_check"`
	// FailContaining fails, alone, each message whose payload contains it.
	FailContaining string `json:"fail_containing"`
	// DropContaining drops each message whose payload contains it.
	DropContaining string `json:"drop_containing"`
	// FailBatchContaining fails the whole batch when a payload contains it.
	FailBatchContaining string `json:"fail_batch_containing"`
	// EnvKeys copies these environment variables, when set, into each
	// processed message's metadata as env:<name>.
	EnvKeys []string `json:"env_keys"`
	// RejectConfig makes Configure fail.
	RejectConfig bool `json:"reject_config"`
	// MarkerDir holds the files that make the crash and the hang happen once.
	MarkerDir string `json:"marker_dir"`
}

type plugin struct {
	conf       config
	afterCrash bool // the crash happened before this process started
	batches    atomic.Int64
	checks     atomic.Int64
}

func (p *plugin) Configure(_ context.Context, c pluginsdk.Config) error {
	if err := c.Decode(&p.conf); err != nil {
		return err
	}
	if p.conf.RejectConfig {
		return errors.New("reject_config is set")
	}
	_, err := os.Stat(filepath.Join(p.conf.MarkerDir, "crashed"))
	p.afterCrash = err == nil
	slog.Info("testplugin configured", "pid", os.Getpid())
	return nil
}

// once reports whether the event named by what has not happened yet in any
// process, and marks it as happened.
func (p *plugin) once(what string) bool {
	f, err := os.OpenFile(filepath.Join(p.conf.MarkerDir, what), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return false
	}
	_ = f.Close()
	return true
}

func (p *plugin) ProcessBatch(ctx context.Context, batch []*pluginsdk.Message) error {
	n := int(p.batches.Add(1))
	if p.conf.CrashWhileExists != "" {
		if _, err := os.Stat(p.conf.CrashWhileExists); err == nil {
			log.Print("testplugin: crashing as told")
			os.Exit(3)
		}
	}
	if n == p.conf.CrashOnBatch && p.once("crashed") {
		log.Printf("testplugin: crashing on batch %d", n)
		os.Exit(3)
	}
	if n == p.conf.HangOnBatch && (p.conf.CrashOnBatch == 0 || p.afterCrash) && p.once("hung") {
		slog.Warn("testplugin: hanging", "batch", n)
		select {}
	}
	for _, m := range batch {
		if p.conf.ExitOn != "" && strings.Contains(string(m.Payload), p.conf.ExitOn) {
			log.Printf("testplugin: exiting on %q", m.Payload)
			os.Exit(3)
		}
		if p.conf.HangOn != "" && strings.Contains(string(m.Payload), p.conf.HangOn) {
			select {}
		}
	}
	pid := strconv.Itoa(os.Getpid())
	for _, m := range batch {
		if p.conf.FailBatchContaining != "" && strings.Contains(string(m.Payload), p.conf.FailBatchContaining) {
			return errors.New("the batch holds " + p.conf.FailBatchContaining)
		}
	}
	for _, m := range batch {
		if p.conf.DropContaining != "" && strings.Contains(string(m.Payload), p.conf.DropContaining) {
			m.Drop()
			continue
		}
		if p.conf.FailContaining != "" && strings.Contains(string(m.Payload), p.conf.FailContaining) {
			m.Fail(pluginsdk.WithCode(fmt.Errorf("payload contains %q", p.conf.FailContaining), "test_rejected"))
			continue
		}
		m.Payload = append([]byte("processed:"), m.Payload...)
		m.Metadata["plugin_pid"] = pid
		for _, k := range p.conf.EnvKeys {
			if v, ok := os.LookupEnv(k); ok {
				m.Metadata["env:"+k] = v
			}
		}
	}
	return ctx.Err()
}

func (p *plugin) CheckHealth(context.Context) error {
	n := int(p.checks.Add(1))
	if n == p.conf.UnhealthyOnCheck && p.once("unhealthy") {
		return errors.New("unhealthy as told")
	}
	return nil
}

func main() { pluginsdk.Serve(&plugin{}) }

// Command sigecho is a stand-in for qiflow in testenv's process tests: it
// prints "ready", then exits with code 3 on SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	fmt.Println("ready", os.Getenv("SIGECHO_GREETING"))
	fmt.Fprintln(os.Stderr, "on stderr")
	<-sigs
	fmt.Println("got SIGTERM")
	os.Exit(3)
}

package testenv

// PID returns the process's ID, for tests that look at the processes it
// starts.
func (p *Process) PID() int { return p.cmd.Process.Pid }

//go:build !linux

package main

// haveProcStats: --pid needs /proc, which only Linux has.
const haveProcStats = false

// readProcUsage knows nothing here.
func readProcUsage(int) procUsage { return procUsage{} }

//go:build !linux

package main

func helper([]string) bool { return false }

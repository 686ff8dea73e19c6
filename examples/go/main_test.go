package main

import "testing"

func TestGreeting(t *testing.T) {
	if got := greeting("x"); got != "Hello from the x!" {
		t.Fatalf("greeting = %q", got)
	}
	t.Log("tester stage ran the tests")
}

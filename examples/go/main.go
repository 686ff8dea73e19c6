package main

import (
	"fmt"
	"runtime"
)

func greeting(what string) string { return "Hello from the " + what + "!" }

func main() {
	fmt.Println(greeting("multi-stage Go build"))
	fmt.Println("built with", runtime.Version())
}

package main

import (
	"os"
	"testing"

	"github.com/rarp-replay/rarp-replay/internal/nstest"
)

func TestMain(m *testing.M) { os.Exit(nstest.Main(m)) }

package main

import "invigil/detectors/rules"

func mustPolicy() rules.Policy { p, _ := rules.DefaultPolicy("rest_room"); p.HandsEvery = 1; return p }

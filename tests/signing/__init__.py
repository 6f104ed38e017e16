"""Tests of the signature engine (parafe.signing): independent validators, benches live in bench/."""

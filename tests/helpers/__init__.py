"""Test helpers: generated manifests, fake servers, ledgers."""

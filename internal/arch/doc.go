// Package arch holds no code: its test enforces the layering of Redoubt's
// packages (docs/architecture.md), so that each package imports only the
// layers below it.
package arch

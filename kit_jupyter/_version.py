"""The package version, its own module so that commands can name it without importing the
package root (which imports the adapters)."""

__version__ = "0.1.0"

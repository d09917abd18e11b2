"""Helpers shared by the test suites: throwaway databases and live servers on loopback."""

"""Shared pytest configuration: the header names the path the onnxruntime oracle takes."""

from sw import oracle


def pytest_report_header(config):
    return [oracle.describe()]

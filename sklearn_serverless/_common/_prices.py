"""List prices of the platforms a fit runs on, per backend (see the user
guide's "What a fit costs" for the sources and their date).

Every entry gives the price of a GB-second of function memory, of a
vCPU-second (platforms that bill CPU apart), of one invocation, and the
memory (MB) and vCPUs a function has when the Lithops config does not say
(Lithops' own defaults). Object-store requests (``storage``) and Redis
commands (``redis``) have entries of their own.
"""

from __future__ import annotations

#: When the list prices below were recorded (each entry names its source).
PRICES_DATE = "2026-12-06"

PRICES: dict[str, dict] = {
    # https://aws.amazon.com/lambda/pricing/ (us-east-1, first 6 billion
    # GB-s a month; the INIT phase billed since 2025-08-01).
    "aws_lambda": {"gb_second": 0.0000166667, "vcpu_second": 0.0, "request": 0.20e-6,
                   "memory_mb": 256, "vcpus": 0.0},
    "aws_lambda_arm64": {"gb_second": 0.0000133334, "vcpu_second": 0.0, "request": 0.20e-6,
                         "memory_mb": 256, "vcpus": 0.0},
    # https://cloud.google.com/functions/pricing (Cloud Run functions,
    # tier 1, request-based billing: CPU and memory apart).
    "gcp_functions": {"gb_second": 0.0000025, "vcpu_second": 0.000024, "request": 0.40e-6,
                      "memory_mb": 256, "vcpus": 0.167},
    # https://cloud.google.com/run/pricing (tier 1, request-based billing).
    "gcp_cloudrun": {"gb_second": 0.0000025, "vcpu_second": 0.000024, "request": 0.40e-6,
                     "memory_mb": 256, "vcpus": 0.25},
    # https://azure.microsoft.com/pricing/details/functions/ (Flex
    # Consumption, on demand: instance memory GB-s and executions).
    "azure_functions": {"gb_second": 0.000026, "vcpu_second": 0.0, "request": 0.40e-6,
                        "memory_mb": 2048, "vcpus": 0.0},
    # https://www.ibm.com/cloud/code-engine/pricing (jobs: vCPU-s and GB-s,
    # no request fee).
    "code_engine": {"gb_second": 0.00000356, "vcpu_second": 0.00003431, "request": 0.0,
                    "memory_mb": 256, "vcpus": 0.125},
    # Machines the user pays for otherwise: zero unless the user gives a price.
    "k8s": {"gb_second": 0.0, "vcpu_second": 0.0, "request": 0.0, "memory_mb": 512,
            "vcpus": 0.0},
    "localhost": {"gb_second": 0.0, "vcpu_second": 0.0, "request": 0.0, "memory_mb": 0,
                  "vcpus": 0.0},
    # https://aws.amazon.com/s3/pricing/ (S3 Standard, us-east-1): PUT, COPY,
    # POST, LIST per request; GET and HEAD per request; DELETE free. Other
    # clouds' standard object storage lists the same two classes of request
    # at the same prices.
    "storage": {"PUT": 0.005e-3, "LIST": 0.005e-3, "GET": 0.0004e-3, "HEAD": 0.0004e-3,
                "DELETE": 0.0},
    # https://aws.amazon.com/elasticache/pricing/ (ElastiCache Serverless for
    # Redis OSS: $0.0034 per million ECPUs; a simple command moving up to
    # 1 KB is one ECPU, so commands are priced at one ECPU each: a floor).
    "redis": {"command": 0.0034e-6},
}

#: Backends priced from the table under another name.
_ALIASES = {"gcp_functions_gen2": "gcp_functions", "knative": "k8s", "singularity": "k8s"}


def price_entry(name: str, overrides: dict | None = None) -> dict:
    """The table's entry for ``name`` with the user's ``overrides``
    (``set_config(prices=...)``) applied; zeros for a backend the table
    does not know."""
    name = _ALIASES.get(name, name)
    entry = dict(PRICES.get(name, PRICES["localhost"]))
    entry.update((overrides or {}).get(name, {}))
    return entry

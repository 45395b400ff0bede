"""The fraud use case's online request parser: card transactions as the upstream sends them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slipway.serving.request import TransactionParser, spark_round


def fraud_parser() -> TransactionParser:
    """The fraud use case's transactions: ``amount_eur`` with the FX table, silver's rounding,
    and the ``transaction_context`` on-demand view."""
    from slipway.usecases.fraud import FRAUD, TRANSACTIONS
    from slipway.usecases.fraud.landing import FX_TO_EUR
    from slipway.usecases.fraud.request_features import transaction_context

    def derive(values: Mapping[str, Any]) -> dict[str, Any]:
        rate = FX_TO_EUR.get(values["currency"])
        # An unknown currency fails the contract's isin check; amount_eur stays unset then.
        return {} if rate is None else {"amount_eur": spark_round(values["amount"] * rate, 4)}

    assert FRAUD.examples is not None
    return TransactionParser(
        stream=TRANSACTIONS,
        derive=derive,
        request_fields=FRAUD.examples.request_columns,
        transforms={"transaction_context": transaction_context},
    )

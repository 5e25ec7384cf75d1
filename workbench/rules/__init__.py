"""The rule language: parse and print rules, and find when a rule would have fired over history.

    from workbench.rules import parse_rule, backtest, summarize
    fires = backtest("close crosses_above sma(20) and rsi(14) < 30", bars)
"""

from workbench.rules.backtesting import backtest, scan_tables, summarize
from workbench.rules.model import Alert, Rule
from workbench.rules.parse import RuleSyntaxError, describe, parse_rule, to_text

__all__ = ["Alert", "Rule", "RuleSyntaxError", "backtest", "describe", "parse_rule", "scan_tables", "summarize",
           "to_text"]

"""Versioned schema migrations. Each entry runs once, in order, inside one transaction, when a store opens.

Append new versions; never edit a released one.
"""

from __future__ import annotations

from workbench.models import BOOK_COLUMNS

_BOOK_SQL = ",\n    ".join(f"{c} {'BIGINT' if c.endswith('_volume') else 'DOUBLE'}" for c in BOOK_COLUMNS)

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "instruments, quotes, bars, tasks, audit, rule state, triggers, notifications, events, ticks, commands",
        f"""
CREATE TABLE instruments (
    code VARCHAR PRIMARY KEY,          -- canonical 600000.SH
    name VARCHAR NOT NULL,
    exchange VARCHAR NOT NULL,
    board VARCHAR NOT NULL,
    listing_date DATE,
    limit_ratio DOUBLE NOT NULL
);

-- One row per stock per snapshot. No index: a tick's rows are written atomically with its row in
-- monitor_ticks, and re-writes are filtered on (ts, code) inside the tick's time range.
CREATE TABLE quotes (
    code VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    name VARCHAR,
    last DOUBLE, open DOUBLE, high DOUBLE, low DOUBLE, prev_close DOUBLE,
    volume BIGINT,                     -- shares, cumulative for the day
    amount DOUBLE,                     -- yuan, cumulative for the day
    {_BOOK_SQL},
    limit_up DOUBLE, limit_down DOUBLE,
    suspended BOOLEAN NOT NULL
);

-- Bars stamped at their END (09:31 ... 11:30, 13:01 ... 15:00 for 1m). Natural key (code, freq, ts).
CREATE TABLE bars (
    code VARCHAR NOT NULL,
    freq VARCHAR NOT NULL,             -- '1m', '5m', '1d'
    ts TIMESTAMPTZ NOT NULL,
    open DOUBLE NOT NULL, high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL,
    volume BIGINT NOT NULL,            -- shares in the bar
    amount DOUBLE NOT NULL             -- yuan in the bar
);

CREATE SEQUENCE task_id_seq START 1;
CREATE TABLE monitor_tasks (
    task_id BIGINT PRIMARY KEY DEFAULT nextval('task_id_seq'),
    task_name VARCHAR NOT NULL,
    stock_code VARCHAR NOT NULL,
    stock_name VARCHAR NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('running', 'stopped')),
    check_interval INTEGER NOT NULL CHECK (check_interval >= 1),
    auto_trade BOOLEAN NOT NULL,
    trading_hours_only BOOLEAN NOT NULL,
    entry_min DOUBLE, entry_max DOUBLE, take_profit DOUBLE, stop_loss DOUBLE,
    notification_enabled BOOLEAN NOT NULL,
    quant_config JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE SEQUENCE audit_id_seq START 1;
CREATE TABLE task_audit (
    audit_id BIGINT PRIMARY KEY DEFAULT nextval('audit_id_seq'),
    ts TIMESTAMPTZ NOT NULL,
    actor VARCHAR NOT NULL,            -- dashboard, cli, notebook, schedule, demo
    action VARCHAR NOT NULL,
    task_id BIGINT,
    detail JSON,
    result VARCHAR NOT NULL,           -- ok | error
    error VARCHAR
);

-- Per task and rule: the edge state that makes a held condition fire once, and the entry price.
CREATE TABLE rule_state (
    task_id BIGINT NOT NULL,
    rule VARCHAR NOT NULL,
    trading_date DATE NOT NULL,
    active BOOLEAN NOT NULL,           -- the condition was true at the last check
    last_value DOUBLE,                 -- price at the last check
    last_check TIMESTAMPTZ,
    last_fire TIMESTAMPTZ,
    fires_today INTEGER NOT NULL,
    entry_price DOUBLE,
    PRIMARY KEY (task_id, rule)
);

CREATE TABLE triggers (
    trigger_id VARCHAR PRIMARY KEY,    -- deterministic: task, rule, code, tick
    task_id BIGINT NOT NULL,
    rule VARCHAR NOT NULL,
    code VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    trading_date DATE NOT NULL,
    price DOUBLE NOT NULL,
    message VARCHAR NOT NULL,
    late BOOLEAN NOT NULL DEFAULT false
);

CREATE SEQUENCE notification_id_seq START 1;
CREATE TABLE notifications (
    notification_id BIGINT PRIMARY KEY DEFAULT nextval('notification_id_seq'),
    trigger_id VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,          -- in_app here; outbox channels later
    task_id BIGINT NOT NULL,
    title VARCHAR NOT NULL,
    body VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    read_at TIMESTAMPTZ,
    UNIQUE (trigger_id, channel)
);

CREATE SEQUENCE event_seq START 1;
CREATE TABLE events (
    seq BIGINT PRIMARY KEY DEFAULT nextval('event_seq'),
    ts TIMESTAMPTZ NOT NULL,
    event_type VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    dedupe_key VARCHAR UNIQUE,         -- set for events that a re-run must not repeat
    payload JSON NOT NULL
);

-- The tick journal: one row per committed monitor tick, written in the tick's transaction.
CREATE TABLE monitor_ticks (
    ts TIMESTAMPTZ PRIMARY KEY,
    trading_date DATE NOT NULL,
    snapshot_rows INTEGER NOT NULL,
    tasks_evaluated INTEGER NOT NULL,
    triggers INTEGER NOT NULL,
    written_at TIMESTAMPTZ NOT NULL
);

-- Commands to the running service (stop), honoured by the loop within one tick.
CREATE SEQUENCE command_id_seq START 1;
CREATE TABLE service_commands (
    command_id BIGINT PRIMARY KEY DEFAULT nextval('command_id_seq'),
    ts TIMESTAMPTZ NOT NULL,
    command VARCHAR NOT NULL,
    actor VARCHAR NOT NULL,
    consumed_at TIMESTAMPTZ
);
""",
    ),
    (
        2,
        "backfill chunks: completed chunks of a backfill job, so an interrupted job resumes where it stopped",
        """
CREATE TABLE backfill_chunks (
    job_key VARCHAR NOT NULL,          -- source|freq|start|end|digest of the code list
    chunk INTEGER NOT NULL,
    codes INTEGER NOT NULL,
    fetched INTEGER NOT NULL,          -- bars the source returned
    written INTEGER NOT NULL,          -- bars that were new
    completed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_key, chunk)
);
""",
    ),
    (
        3,
        "daily indicators: one wide row per stock, day and convention",
        """
CREATE TABLE daily_indicators (
    code VARCHAR NOT NULL,
    trading_date DATE NOT NULL,
    convention VARCHAR NOT NULL,       -- 'tdx' (Chinese terminals) or 'talib'
    close DOUBLE NOT NULL,
    sma5 DOUBLE, sma10 DOUBLE, sma20 DOUBLE, sma60 DOUBLE,
    macd_dif DOUBLE, macd_dea DOUBLE, macd_hist DOUBLE,
    rsi14 DOUBLE,
    boll_upper DOUBLE, boll_mid DOUBLE, boll_lower DOUBLE,
    atr14 DOUBLE,
    kdj_k DOUBLE, kdj_d DOUBLE, kdj_j DOUBLE,
    computed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (code, trading_date, convention)
);
""",
    ),
    (
        4,
        "rule language: task rule and alert columns, full rule state, trigger buckets, paper orders",
        """
ALTER TABLE monitor_tasks ADD COLUMN rule JSON;            -- the task's rule (rule language, JSON form)
ALTER TABLE monitor_tasks ADD COLUMN alert JSON DEFAULT '{}';  -- alert semantics: mode, frequency, cooldown ...
UPDATE monitor_tasks SET alert = '{}' WHERE alert IS NULL;
-- the skeleton's level crossing (quant_config.cross_level / cross_direction) becomes a rule
UPDATE monitor_tasks SET rule = json_object(
    'condition', json_object(
        'kind', 'cross',
        'direction', CASE quant_config->>'cross_direction' WHEN 'up' THEN 'above' WHEN 'down' THEN 'below'
                     ELSE 'either' END,
        'left', json_object('kind', 'field', 'name', 'price'),
        'right', json_object('kind', 'num', 'value', CAST(quant_config->>'cross_level' AS DOUBLE))),
    'timeframe', '1m', 'convention', 'tdx')
WHERE rule IS NULL AND quant_config->>'cross_level' IS NOT NULL;

DROP TABLE rule_state;
-- Per task and rule: what the alert semantics remember, written in the transaction of the tick that changed it.
CREATE TABLE rule_state (
    task_id BIGINT NOT NULL,
    rule VARCHAR NOT NULL,             -- entry | take_profit | stop_loss | rule
    trading_date DATE NOT NULL,        -- the day fires_today and last_bucket count for
    armed BOOLEAN NOT NULL,            -- an edge may fire (re-armed after the condition was false past the band)
    active BOOLEAN NOT NULL,           -- the condition held at the last check
    last_value DOUBLE,                 -- price at the last check
    last_check TIMESTAMPTZ,
    last_fire TIMESTAMPTZ,
    last_bucket BIGINT NOT NULL,       -- epoch second of the frequency bucket of the last fire, -1 if none
    fires_today INTEGER NOT NULL,
    entry_price DOUBLE,                -- the task's entry price learnt from its entry rule
    node_state VARCHAR NOT NULL,       -- JSON list: side of each cross / range edge / limit state in the rule
    done BOOLEAN NOT NULL,             -- a frequency 'once' rule has fired
    PRIMARY KEY (task_id, rule)
);

ALTER TABLE triggers ADD COLUMN bucket VARCHAR;   -- the frequency bucket in the trigger id

-- Paper order intents of auto_trade tasks: one per trigger, never sent to a broker.
CREATE TABLE paper_orders (
    trigger_id VARCHAR PRIMARY KEY,
    task_id BIGINT NOT NULL,
    code VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    side VARCHAR NOT NULL CHECK (side IN ('buy', 'sell')),
    price DOUBLE NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0 AND quantity % 100 = 0),
    status VARCHAR NOT NULL DEFAULT 'intent'
);
""",
    ),
    (
        5,
        "event log: wall time of each append, so followers can tell a hole still filling from a rolled-back one",
        """
ALTER TABLE events ADD COLUMN written_at TIMESTAMPTZ;
""",
    ),
    (
        6,
        "notification outbox: delivery state of each (trigger, channel) row; in-app rows are delivered on creation",
        """
ALTER TABLE notifications ADD COLUMN status VARCHAR DEFAULT 'delivered';  -- pending | sending | delivered | failed
ALTER TABLE notifications ADD COLUMN attempts INTEGER DEFAULT 0;
ALTER TABLE notifications ADD COLUMN next_attempt TIMESTAMPTZ;           -- due time; for 'sending', the lease end
ALTER TABLE notifications ADD COLUMN last_error VARCHAR;
ALTER TABLE notifications ADD COLUMN delivered_at TIMESTAMPTZ;
ALTER TABLE notifications ADD COLUMN late BOOLEAN DEFAULT false;          -- delivered later than the alert's time
ALTER TABLE notifications ADD COLUMN digest_key VARCHAR;                  -- the digest message that carried it
ALTER TABLE notifications ADD COLUMN payload JSON;                        -- the alert, schema workbench.alert/1
UPDATE notifications SET status = 'delivered', attempts = 0, late = false WHERE status IS NULL;
""",
    ),
    (
        7,
        "tick recordings: every snapshot row a feed answered, by feed, for replay and Parquet export",
        f"""
-- One row per stock per distinct quote time per feed (a row repeating the stock's previous quote time is not
-- stored again). No index: writes filter on (feed, code, ts) inside the batch's time range.
CREATE TABLE quote_recordings (
    feed VARCHAR NOT NULL,             -- tencent, sina, eastmoney, xtquant, simulated ...
    received_at TIMESTAMPTZ NOT NULL,  -- clock time of the snapshot that carried the row
    code VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,           -- the vendor's quote time
    name VARCHAR,
    last DOUBLE, open DOUBLE, high DOUBLE, low DOUBLE, prev_close DOUBLE,
    volume BIGINT,                     -- shares, cumulative for the day
    amount DOUBLE,                     -- yuan, cumulative for the day
    {_BOOK_SQL},
    limit_up DOUBLE, limit_down DOUBLE,
    suspended BOOLEAN NOT NULL
);
""",
    ),
    (
        8,
        "control plane: service runs (who started the monitor, where it runs, its last health report), "
        "commands addressed to a run, and each tick's lag behind the clock",
        """
-- One row per start of the monitor service: requested by a command or a schedule, reported on by the loop.
CREATE TABLE service_runs (
    run_id VARCHAR PRIMARY KEY,
    mode VARCHAR NOT NULL,             -- prefect (a deployment's flow run) | local (a process of ours) | inline
    flow_run_id VARCHAR,
    pid INTEGER,
    trading_date DATE,
    speed DOUBLE,                      -- simulated-clock speed; NULL on the real clock
    actor VARCHAR NOT NULL,
    state VARCHAR NOT NULL,            -- starting | running | stopping | stopped | completed | failed | cancelled
    requested_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    last_seen TIMESTAMPTZ,             -- wall time of the loop's last report
    health JSON,                       -- the loop's last report: tick, lag, feed, store, calendar
    detail VARCHAR
);
ALTER TABLE service_commands ADD COLUMN run_id VARCHAR;    -- the run a command is for (NULL: whichever runs)
ALTER TABLE service_commands ADD COLUMN result VARCHAR;    -- honoured | superseded
ALTER TABLE monitor_ticks ADD COLUMN lag_seconds DOUBLE;   -- clock seconds the loop was behind the tick's time
""",
    ),
    (
        9,
        "outbox messages: a row's message key is fixed before its first send, so a retry sends the same message",
        """
-- The key of the message (one alert, or a digest) that carries the row: set before the first attempt and kept, so a
-- retried or timed-out send goes out again as the same message under the same key (was: the digest that carried it,
-- set on delivery).
ALTER TABLE notifications RENAME COLUMN digest_key TO message_key;
""",
    ),
    (
        10,
        "exchange holidays: closed days after the exchange calendar's data, stored with who added them and when",
        """
-- Days the exchanges close that exchange_calendars does not know yet (its XSHG data ends 2026-12-31): the user adds
-- them (`workbench calendar holidays add`) once the exchanges publish their closure schedule. Weekdays only, each
-- after the exchange calendar's last date; the change itself is in task_audit.
CREATE TABLE calendar_holidays (
    holiday_date DATE PRIMARY KEY,
    added_by VARCHAR NOT NULL,         -- the actor: cli, dashboard, notebook ...
    added_at TIMESTAMPTZ NOT NULL
);
""",
    ),
    (
        11,
        "instruments without a fixed limit ratio: a stock's daily limit depends on the date (workbench.limits)",
        """
-- A stored ratio was one date's rule for ever (main-board ST: +-5 % until 2026-07-03, +-10 % from 2026-07-06; no
-- limit in a new listing's first days): limits are computed from the board, the short name, the listing date and
-- the quote's date instead.
ALTER TABLE instruments DROP COLUMN limit_ratio;
""",
    ),
    (
        12,
        "ids from sequences are given by the writers, not column defaults: the store can be served over Quack",
        """
-- A client of DuckDB 1.5.5's Quack cannot ATTACH a database that has a column default calling a function (nextval,
-- now()): 'Binder Error: Catalog "<alias>" does not exist!'. Constant defaults are fine. The writers in
-- workbench/store/ now take each id from its sequence themselves (nextval in the INSERT).
ALTER TABLE monitor_tasks ALTER COLUMN task_id DROP DEFAULT;
ALTER TABLE task_audit ALTER COLUMN audit_id DROP DEFAULT;
ALTER TABLE notifications ALTER COLUMN notification_id DROP DEFAULT;
ALTER TABLE events ALTER COLUMN seq DROP DEFAULT;
ALTER TABLE service_commands ALTER COLUMN command_id DROP DEFAULT;
""",
    ),
    (
        13,
        "staging for batch jobs served by the server: clients append rows, the server merges them in one transaction",
        """
-- A backfill or indicator job running beside a workbench server cannot open the file; over Quack it may append but
-- not upsert (INSERT ... ON CONFLICT, UPDATE and DELETE of a remote table fail, and a client's ROLLBACK is not
-- atomic). So it appends its rows here under a batch id, and asks the server's API to merge the batch: insert-if-
-- absent (bars) or upsert (indicators), the chunk's record and the batch's removal, in one server transaction.
CREATE TABLE bar_staging (
    batch VARCHAR NOT NULL,
    code VARCHAR NOT NULL, freq VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL,
    open DOUBLE NOT NULL, high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL,
    volume BIGINT NOT NULL, amount DOUBLE NOT NULL
);
CREATE TABLE indicator_staging (
    batch VARCHAR NOT NULL,
    code VARCHAR NOT NULL, trading_date DATE NOT NULL, convention VARCHAR NOT NULL, close DOUBLE NOT NULL,
    sma5 DOUBLE, sma10 DOUBLE, sma20 DOUBLE, sma60 DOUBLE,
    macd_dif DOUBLE, macd_dea DOUBLE, macd_hist DOUBLE,
    rsi14 DOUBLE,
    boll_upper DOUBLE, boll_mid DOUBLE, boll_lower DOUBLE,
    atr14 DOUBLE,
    kdj_k DOUBLE, kdj_d DOUBLE, kdj_j DOUBLE,
    computed_at TIMESTAMPTZ NOT NULL
);
""",
    ),
    (
        14,
        "watchlists: named lists of stocks, their members in order, who created and last changed each list",
        """
-- A list is named by the user (unique); its id is given by the writer from the sequence (no nextval default:
-- migration 12), so a rename changes one row and no member. Codes are canonical (600519.SH, Beijing 920xxx.BJ), as
-- in instruments and quotes; a member's position orders the list (gaps are fine: removals leave them). Every change
-- is also in task_audit (watchlists.*).
CREATE SEQUENCE watchlist_id_seq START 1;
CREATE TABLE watchlists (
    watchlist_id BIGINT PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    created_by VARCHAR NOT NULL,       -- the actor: cli, dashboard, notebook, api ...
    created_at TIMESTAMPTZ NOT NULL,
    updated_by VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE watchlist_members (
    watchlist_id BIGINT NOT NULL,
    code VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    added_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (watchlist_id, code)
);
""",
    ),
    (
        15,
        "scan tasks: a task's target (one stock, a watchlist, the market) and alert state per task, rule and stock",
        """
-- A scan task runs its rule for every stock of a watchlist or of the market (stock_code empty), so what the alert
-- semantics remember is kept per stock too: rule_state gains the stock's code in its key (a single-stock task's rows
-- carry the task's own code).
ALTER TABLE monitor_tasks ADD COLUMN target VARCHAR DEFAULT 'stock';
ALTER TABLE monitor_tasks ADD COLUMN watchlist VARCHAR;
UPDATE monitor_tasks SET target = 'stock' WHERE target IS NULL;

CREATE TABLE rule_state_by_stock (
    task_id BIGINT NOT NULL,
    rule VARCHAR NOT NULL,             -- entry | take_profit | stop_loss | rule
    code VARCHAR NOT NULL,             -- the stock the row watches
    trading_date DATE NOT NULL,
    armed BOOLEAN NOT NULL,
    active BOOLEAN NOT NULL,
    last_value DOUBLE,
    last_check TIMESTAMPTZ,
    last_fire TIMESTAMPTZ,
    last_bucket BIGINT NOT NULL,
    fires_today INTEGER NOT NULL,
    entry_price DOUBLE,
    node_state VARCHAR NOT NULL,
    done BOOLEAN NOT NULL,
    PRIMARY KEY (task_id, rule, code)
);
INSERT INTO rule_state_by_stock
SELECT r.task_id, r.rule, t.stock_code, r.trading_date, r.armed, r.active, r.last_value, r.last_check, r.last_fire,
       r.last_bucket, r.fires_today, r.entry_price, r.node_state, r.done
FROM rule_state r JOIN monitor_tasks t USING (task_id);
DROP TABLE rule_state;
ALTER TABLE rule_state_by_stock RENAME TO rule_state;
""",
    ),
    (
        16,
        "market breadth: advancing / declining, limit-up / limit-down and broken-board counts per tick",
        """
-- One row per monitor tick from the 09:25 match to the close, written in the tick's transaction (workbench.breadth
-- says how each count is made). Rates (炸板率, 涨跌比, % above MA20) are derived from the counts when read.
CREATE TABLE market_breadth (
    ts TIMESTAMPTZ PRIMARY KEY,
    trading_date DATE NOT NULL,
    stocks INTEGER NOT NULL,           -- priced stocks with a previous close
    advancing INTEGER NOT NULL,
    declining INTEGER NOT NULL,
    unchanged INTEGER NOT NULL,
    limit_up INTEGER NOT NULL,
    limit_down INTEGER NOT NULL,
    broken INTEGER NOT NULL,           -- touched limit-up today, below it now (炸板)
    above_ma20 INTEGER NOT NULL,
    ma20_known INTEGER NOT NULL        -- stocks with 19 daily closes before today
);
""",
    ),
    (
        17,
        "quotes: the day's turnover rate (换手率, %) in the monitor's and the recorder's quote rows",
        """
-- NULL where the feed gives none (Sina, bars, the simulator) and in every row stored before this migration.
ALTER TABLE quotes ADD COLUMN turnover DOUBLE;
ALTER TABLE quote_recordings ADD COLUMN turnover DOUBLE;
""",
    ),
]

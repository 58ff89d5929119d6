-- The first schema. Times are UTC text in a fixed-width RFC 3339 form
-- (2026-11-26T09:00:00.000000000Z), so they read well in the sqlite3 shell
-- and compare correctly as strings; NULL stands for "not yet".

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NOCASE: "Admin" and "admin" are one account, so nobody can be
    -- impersonated by a name that differs only in case.
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE CHECK (username <> ''),
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'assistant', 'examiner', 'proctor')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT    NOT NULL
);

CREATE TABLE exams (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL CHECK (name <> ''),
    starts_at           TEXT    NOT NULL,
    ends_at             TEXT    NOT NULL CHECK (ends_at > starts_at),
    early_login_minutes INTEGER NOT NULL CHECK (early_login_minutes >= 0),
    -- Per-room policy overrides by room name; rooms absent use the defaults.
    policies            TEXT    NOT NULL DEFAULT '{}'
                        CHECK (json_valid(policies) AND json_type(policies) = 'object'),
    created_at          TEXT    NOT NULL
);

CREATE TABLE candidates (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    exam_id           INTEGER NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
    name              TEXT    NOT NULL CHECK (name <> ''),
    external_id       TEXT    NOT NULL DEFAULT '',
    stage             TEXT    NOT NULL CHECK (stage IN ('invited', 'mock', 'device_check_waiting',
                          'device_check_call', 'device_checked', 'interview_waiting', 'interview_call',
                          'interview_done', 'rest_room', 'left')),
    stage_since       TEXT    NOT NULL,
    device_checked_at TEXT,
    interviewed_at    TEXT,
    created_at        TEXT    NOT NULL,
    -- The target of the (candidate_id, exam_id) foreign keys below, which
    -- keep a row from naming a candidate of another exam.
    UNIQUE (id, exam_id)
);
CREATE INDEX candidates_exam ON candidates (exam_id, id);
CREATE INDEX candidates_stage ON candidates (stage);
-- An external ID names one person of an exam; a second row with it is an
-- import mistake.
CREATE UNIQUE INDEX candidates_external_id ON candidates (exam_id, external_id) WHERE external_id <> '';

CREATE TABLE tokens (
    hash         TEXT    PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('staff', 'candidate')),
    user_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    candidate_id INTEGER REFERENCES candidates (id) ON DELETE CASCADE,
    csrf         TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    revoked_at   TEXT,
    CHECK ((kind = 'staff' AND user_id IS NOT NULL AND candidate_id IS NULL)
        OR (kind = 'candidate' AND candidate_id IS NOT NULL AND user_id IS NULL))
);
CREATE INDEX tokens_expires ON tokens (expires_at);

CREATE TABLE codes (
    code         TEXT    NOT NULL CHECK (code <> ''),
    candidate_id INTEGER NOT NULL,
    exam_id      INTEGER NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('mock', 'interview', 'rest_room')),
    active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at   TEXT    NOT NULL,
    UNIQUE (candidate_id, kind),
    FOREIGN KEY (candidate_id, exam_id) REFERENCES candidates (id, exam_id) ON DELETE CASCADE
);
-- A code opens one door: unique among the active codes. Codes of finished
-- exams are deactivated so that the short codes can be drawn again.
CREATE UNIQUE INDEX codes_active_code ON codes (code) WHERE active = 1;
CREATE INDEX codes_exam ON codes (exam_id);

CREATE TABLE stage_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    candidate_id INTEGER NOT NULL REFERENCES candidates (id) ON DELETE CASCADE,
    from_stage   TEXT    NOT NULL CHECK (from_stage IN ('invited', 'mock', 'device_check_waiting',
                     'device_check_call', 'device_checked', 'interview_waiting', 'interview_call',
                     'interview_done', 'rest_room', 'left')),
    to_stage     TEXT    NOT NULL CHECK (to_stage IN ('invited', 'mock', 'device_check_waiting',
                     'device_check_call', 'device_checked', 'interview_waiting', 'interview_call',
                     'interview_done', 'rest_room', 'left')),
    at           TEXT    NOT NULL,
    -- NULL: the candidate or the system moved.
    actor_id     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    reason       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX stage_history_candidate ON stage_history (candidate_id, id);

CREATE TABLE calls (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    exam_id      INTEGER NOT NULL,
    candidate_id INTEGER NOT NULL,
    -- Staff accounts are disabled, never deleted, so RESTRICT only guards
    -- against a mistake that would lose who did what.
    staff_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    kind         TEXT    NOT NULL CHECK (kind IN ('device_check', 'interview', 'spot_check')),
    state        TEXT    NOT NULL CHECK (state IN ('ringing', 'active', 'ended', 'declined')),
    outcome      TEXT    NOT NULL DEFAULT '',
    created_at   TEXT    NOT NULL,
    accepted_at  TEXT,
    ended_at     TEXT,
    FOREIGN KEY (candidate_id, exam_id) REFERENCES candidates (id, exam_id) ON DELETE CASCADE
);
CREATE INDEX calls_candidate ON calls (candidate_id, id);
CREATE INDEX calls_exam_state ON calls (exam_id, state);

CREATE TABLE scores (
    candidate_id INTEGER PRIMARY KEY REFERENCES candidates (id) ON DELETE CASCADE,
    examiner_id  INTEGER REFERENCES users (id) ON DELETE RESTRICT,
    score        REAL    NOT NULL CHECK (score >= 0 AND score <= 100),
    comment      TEXT    NOT NULL DEFAULT '',
    updated_at   TEXT    NOT NULL,
    published_at TEXT
);

CREATE TABLE violations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    key                 TEXT    NOT NULL UNIQUE CHECK (key <> ''),
    exam_id             INTEGER NOT NULL,
    candidate_id        INTEGER NOT NULL,
    -- Types are open-ended (new detectors add new ones), so not checked.
    type                TEXT    NOT NULL CHECK (type <> ''),
    policy              TEXT    NOT NULL DEFAULT '',
    reason              TEXT    NOT NULL DEFAULT '',
    confidence          REAL    NOT NULL,
    started_at          TEXT    NOT NULL,
    opened_at           TEXT    NOT NULL,
    ended_at            TEXT,
    details             TEXT    CHECK (details IS NULL OR json_valid(details)),
    evidence_path       TEXT    NOT NULL DEFAULT '',
    recording_path      TEXT    NOT NULL DEFAULT '',
    recording_offset_ms INTEGER,
    status              TEXT    NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'confirmed', 'dismissed')),
    FOREIGN KEY (candidate_id, exam_id) REFERENCES candidates (id, exam_id) ON DELETE CASCADE
);
CREATE INDEX violations_exam_started ON violations (exam_id, started_at, id);
CREATE INDEX violations_candidate_started ON violations (candidate_id, started_at, id);
CREATE INDEX violations_pending ON violations (exam_id, candidate_id) WHERE status = 'pending';

CREATE TABLE reviews (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    violation_id INTEGER NOT NULL REFERENCES violations (id) ON DELETE CASCADE,
    reviewer_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    decision     TEXT    NOT NULL CHECK (decision IN ('confirmed', 'dismissed')),
    note         TEXT    NOT NULL DEFAULT '',
    at           TEXT    NOT NULL
);
CREATE INDEX reviews_violation ON reviews (violation_id, id);

CREATE TABLE recordings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    exam_id      INTEGER NOT NULL,
    candidate_id INTEGER NOT NULL,
    session_id   TEXT    NOT NULL DEFAULT '',
    path         TEXT    NOT NULL UNIQUE CHECK (path <> ''),
    started_at   TEXT    NOT NULL,
    FOREIGN KEY (candidate_id, exam_id) REFERENCES candidates (id, exam_id) ON DELETE CASCADE
);
CREATE INDEX recordings_candidate ON recordings (candidate_id, started_at);

-- The live event log. seq counts from 1 per exam with no gaps: it is taken
-- inside the write transaction that makes the change, so a rolled-back
-- change takes its number with it.
CREATE TABLE events (
    exam_id      INTEGER NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL CHECK (seq > 0),
    type         TEXT    NOT NULL CHECK (type <> ''),
    at           TEXT    NOT NULL,
    candidate_id INTEGER REFERENCES candidates (id) ON DELETE SET NULL,
    data         TEXT    NOT NULL CHECK (json_valid(data)),
    PRIMARY KEY (exam_id, seq)
) WITHOUT ROWID;

-- No foreign key on actor_id: the audit log must accept every entry and
-- keep it whatever happens to the account later.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT    NOT NULL,
    actor_id INTEGER,
    action   TEXT    NOT NULL CHECK (action <> ''),
    target   TEXT    NOT NULL DEFAULT '',
    details  TEXT    CHECK (details IS NULL OR json_valid(details))
);

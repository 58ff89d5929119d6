-- Which media node an exam's rooms live on (several nodes: the control
-- plane places each exam on one, sticky until that node goes away).
CREATE TABLE exam_placements (
    exam_id   BIGINT PRIMARY KEY REFERENCES exams (id) ON DELETE CASCADE,
    node      TEXT   COLLATE "C" NOT NULL,
    placed_at TEXT   COLLATE "C" NOT NULL
);
CREATE INDEX exam_placements_node ON exam_placements (node);

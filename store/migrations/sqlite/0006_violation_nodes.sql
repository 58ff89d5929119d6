-- Several nodes: which node's data directory holds a violation's files.
-- recording_node wrote the recording segment (a media node), evidence_node
-- the evidence image and audio clip (the control node that stored the
-- violation). '' means the node that serves the request: one process, or a
-- violation stored before nodes had names.
ALTER TABLE violations ADD COLUMN recording_node TEXT NOT NULL DEFAULT '';
ALTER TABLE violations ADD COLUMN evidence_node TEXT NOT NULL DEFAULT '';

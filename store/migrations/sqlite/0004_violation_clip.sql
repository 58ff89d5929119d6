-- A violation opened while the candidate's microphone was live keeps the
-- audio clip that ends at its opening (a WAV under the data directory,
-- like the evidence image); '' when there is none.
ALTER TABLE violations ADD COLUMN clip_path TEXT NOT NULL DEFAULT '';

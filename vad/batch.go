package vad

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// The model runs its chunks in batches across streams. Silero VAD's state is
// an input and an output, so one session serves every detector, and a run
// on N streams' chunks at once (input [N, 512], state [2, N, 128]) costs far
// less than N runs: 0.11 ms for one chunk, 0.42 ms for 8 (0.05 each) on this
// machine alone, and in the server, where the weights are cold in the cache
// after every video frame, one chunk took 0.28 ms of CPU. The chunks of a
// stream are sequential (each needs the state the last left), so a batch
// holds one chunk of each of several streams.
//
// There is no batching goroutine: the detectors' own calls combine. A call
// queues its chunk; if no run is under way it leads: it waits up to
// gatherWait for other streams' chunks (only when other detectors are live,
// so a lone stream never waits), runs the queue's chunks as one batch and
// hands each its result. Chunks queued meanwhile are led by the first of
// them, so no call does more than its own batch of work. gatherWait is
// short next to a chunk (32 ms) and to what the rules look at (seconds), and
// the audio goroutines' packet queues hold seconds.
const (
	gatherWait = 4 * time.Millisecond
	maxBatch   = 32
	stateSize  = 2 * 128 // [2, 1, 128] per stream
)

// model is one model file's session and the tensors of each batch size,
// shared by every detector of the process.
type model struct {
	session *ort.DynamicAdvancedSession

	mu      sync.Mutex
	live    int // detectors open
	queue   []*request
	running bool
	batches map[int]*batchTensors // by batch size, made on first use

	// Counts since the process started: runs of the session, and the
	// chunks they judged (their ratio is the mean batch size).
	runs, chunks atomic.Int64
}

// request is one stream's chunk waiting for the model.
type request struct {
	input *[ChunkSamples]float32
	state *[stateSize]float32 // read, and replaced by the new state
	prob  float32
	err   error
	lead  bool // woken to lead the next batch, not with a result
	done  chan struct{}
	// waited is the time spent gathering or queued behind another batch;
	// ran the time of the run that judged the chunk.
	waited, ran time.Duration
}

type batchTensors struct {
	input, state, output, stateN *ort.Tensor[float32]
	sr                           *ort.Scalar[int64]
}

func (m *model) tensors(n int) (*batchTensors, error) {
	if t, ok := m.batches[n]; ok {
		return t, nil
	}
	t := &batchTensors{}
	var err error
	if t.input, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), ChunkSamples)); err != nil {
		return nil, fmt.Errorf("input tensor: %w", err)
	}
	if t.state, err = ort.NewEmptyTensor[float32](ort.NewShape(2, int64(n), 128)); err != nil {
		return nil, fmt.Errorf("state tensor: %w", err)
	}
	if t.output, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 1)); err != nil {
		return nil, fmt.Errorf("output tensor: %w", err)
	}
	if t.stateN, err = ort.NewEmptyTensor[float32](ort.NewShape(2, int64(n), 128)); err != nil {
		return nil, fmt.Errorf("stateN tensor: %w", err)
	}
	if t.sr, err = ort.NewScalar(int64(SampleRate)); err != nil {
		return nil, fmt.Errorf("sample rate scalar: %w", err)
	}
	if m.batches == nil {
		m.batches = map[int]*batchTensors{}
	}
	m.batches[n] = t
	return t, nil
}

func (m *model) open()  { m.mu.Lock(); m.live++; m.mu.Unlock() }
func (m *model) close() { m.mu.Lock(); m.live--; m.mu.Unlock() }

// run gives req's chunk to the model and returns when req has its result.
func (m *model) run(req *request) {
	req.done = make(chan struct{})
	m.mu.Lock()
	m.queue = append(m.queue, req)
	if m.running {
		m.mu.Unlock()
		start := time.Now()
		<-req.done
		if !req.lead {
			// Queued behind a run, then in the batch: its own run is work.
			req.waited = max(0, time.Since(start)-req.ran)
			return
		}
		req.waited = time.Since(start)
		m.mu.Lock() // promoted: running is still true, held for this call
	} else {
		m.running = true
		if m.live > 1 && len(m.queue) < maxBatch {
			m.mu.Unlock()
			start := time.Now()
			time.Sleep(gatherWait)
			req.waited = time.Since(start)
			m.mu.Lock()
		}
	}
	n := min(len(m.queue), maxBatch)
	batch := append([]*request(nil), m.queue[:n]...)
	m.queue = append(m.queue[:0], m.queue[n:]...)
	m.mu.Unlock()

	start := time.Now()
	m.runBatch(batch)
	ran := time.Since(start)
	for _, r := range batch {
		r.ran = ran
	}

	m.mu.Lock()
	if len(m.queue) > 0 {
		next := m.queue[0]
		next.lead = true
		close(next.done)
	} else {
		m.running = false
	}
	m.mu.Unlock()
	for _, r := range batch {
		if r != req {
			close(r.done)
		}
	}
}

// runBatch runs one batch; only the leader calls it, so the batch tensors
// are its alone. Errors go to every request of the batch.
func (m *model) runBatch(batch []*request) {
	n := len(batch)
	t, err := m.tensors(n)
	if err == nil {
		in, st := t.input.GetData(), t.state.GetData()
		for i, r := range batch {
			copy(in[i*ChunkSamples:], r.input[:])
			// [2, N, 128]: layer l of stream i at (l*N+i)*128.
			copy(st[i*128:(i+1)*128], r.state[:128])
			copy(st[(n+i)*128:(n+i+1)*128], r.state[128:])
		}
		err = m.session.Run([]ort.Value{t.input, t.state, t.sr}, []ort.Value{t.output, t.stateN})
		m.runs.Add(1)
		m.chunks.Add(int64(n))
	}
	if err != nil {
		for _, r := range batch {
			r.err = err
		}
		return
	}
	out, stN := t.output.GetData(), t.stateN.GetData()
	for i, r := range batch {
		r.prob = out[i]
		copy(r.state[:128], stN[i*128:(i+1)*128])
		copy(r.state[128:], stN[(n+i)*128:(n+i+1)*128])
	}
}

// loaded holds one model per model file for the life of the process, like
// the runtime (sessions are never destroyed while the process lives).
var loaded struct {
	mu     sync.Mutex
	byPath map[string]*model
}

func sharedModel(modelPath string) (*model, error) {
	loaded.mu.Lock()
	defer loaded.mu.Unlock()
	if m, ok := loaded.byPath[modelPath]; ok {
		return m, nil
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	// One thread per run: parallelism comes from the streams, and ONNX
	// Runtime's default of a thread per core would make every run fight
	// for every core.
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("session options: intra-op threads: %w", err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("session options: inter-op threads: %w", err)
	}
	s, err := ort.NewDynamicAdvancedSession(modelPath,
		[]string{"input", "state", "sr"}, []string{"output", "stateN"}, opts)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if loaded.byPath == nil {
		loaded.byPath = map[string]*model{}
	}
	m := &model{session: s}
	loaded.byPath[modelPath] = m
	return m, nil
}

// ModelRuns counts the runs of the model cfg names since the process
// started, and the chunks they judged (both 0 before a detector loaded
// it): chunks/runs is the mean batch size.
func ModelRuns(cfg Config) (runs, chunks int64) {
	loaded.mu.Lock()
	m := loaded.byPath[cfg.ModelPath]
	loaded.mu.Unlock()
	if m == nil {
		return 0, 0
	}
	return m.runs.Load(), m.chunks.Load()
}

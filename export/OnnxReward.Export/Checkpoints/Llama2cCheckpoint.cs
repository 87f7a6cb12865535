using System.Buffers;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// A llama2.c "legacy" export (run.c's format): 7 × int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
/// vocab_size, seq_len; a negative vocab_size means a separate classifier), then float32 arrays. Tensors are read by
/// offset and exposed under Hugging Face names; wq/wk rows get the Meta→HF permutation of
/// convert_llama_weights_to_hf.py (llama2.c rotates adjacent pairs, HF rotates halves).
/// </summary>
internal sealed class Llama2cCheckpoint : ITensorSource
{
    private const int HeaderBytes = 7 * 4;
    private readonly SafeFileHandle _file;
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly string _path;

    private readonly record struct Entry(TensorInfo Info, long Offset, int PermuteHeads);

    private Llama2cCheckpoint(string path, SafeFileHandle file)
    {
        _path = path;
        _file = file;
    }

    public IReadOnlyList<string> Names { get; private set; } = [];

    public static Checkpoint Open(string path)
    {
        var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            var source = new Llama2cCheckpoint(path, file);
            var config = source.ReadLayout();
            CheckpointLayout.Validate(path, config, null, source);
            return new Checkpoint
            {
                Config = config,
                Head = null,
                Tensors = source,
                Format = "llama2c",
                SourceFiles = [path],
                Location = Path.GetDirectoryName(Path.GetFullPath(path))!,
            };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private LlamaConfig ReadLayout()
    {
        var length = RandomAccess.GetLength(_file);
        Span<int> h = stackalloc int[7];
        if (length < HeaderBytes)
            throw new CheckpointException(
                $"{_path} is {length} bytes, shorter than the 28-byte llama2.c header. The file is truncated.", _path, byteOffset: 0);
        RandomAccess.Read(_file, MemoryMarshal.AsBytes(h), 0);
        if ((uint)h[0] == 0x616b3432u)
            throw new CheckpointException(
                $"{_path} starts with the llama2.c magic 'ak42' (a version {h[1]} export); only the legacy (version 0) format is read. " +
                "Re-export it with llama2.c's `export.py --version 0`.", _path, byteOffset: 0);
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocabSigned = h[5], seqLen = h[6];
        var shared = vocabSigned > 0;
        var vocab = Math.Abs(vocabSigned);
        if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab <= 0 || seqLen <= 0
            || dim > 1 << 16 || hidden > 1 << 18 || layers > 1024 || heads > dim || vocab > 1 << 22 || seqLen > 1 << 20
            || dim % heads != 0 || heads % kvHeads != 0 || dim / heads % 2 != 0)
            throw new CheckpointException(
                $"{_path}: header (dim {dim}, hidden_dim {hidden}, n_layers {layers}, n_heads {heads}, n_kv_heads {kvHeads}, " +
                $"vocab_size {vocabSigned}, seq_len {seqLen}) does not describe a Llama model. Is this a llama2.c legacy .bin file?",
                _path, byteOffset: 0);
        var headDim = dim / heads;
        long kvDim = (long)kvHeads * headDim;

        long offset = HeaderBytes;
        void Add(string name, long[] shape, int permuteHeads = 0)
        {
            var info = new TensorInfo(name, ElementType.Float, shape);
            _entries[name] = new Entry(info, offset, permuteHeads);
            offset = checked(offset + info.ElementCount * 4);
        }
        void PerLayer(string suffix, long[] shape, int permuteHeads = 0)
        {
            // llama2.c stores each weight kind for all layers contiguously: [layers, ...].
            for (var i = 0; i < layers; i++)
                Add($"model.layers.{i}.{suffix}", shape, permuteHeads);
        }

        Add("model.embed_tokens.weight", [vocab, dim]);
        PerLayer("input_layernorm.weight", [dim]);
        PerLayer("self_attn.q_proj.weight", [dim, dim], permuteHeads: heads);
        PerLayer("self_attn.k_proj.weight", [kvDim, dim], permuteHeads: kvHeads);
        PerLayer("self_attn.v_proj.weight", [kvDim, dim]);
        PerLayer("self_attn.o_proj.weight", [dim, dim]);
        PerLayer("post_attention_layernorm.weight", [dim]);
        PerLayer("mlp.gate_proj.weight", [hidden, dim]);   // w1
        PerLayer("mlp.down_proj.weight", [dim, hidden]);   // w2
        PerLayer("mlp.up_proj.weight", [hidden, dim]);     // w3
        Add("model.norm.weight", [dim]);
        offset = checked(offset + 2L * seqLen * headDim / 2 * 4);   // freq_cis_real, freq_cis_imag: unused (RoPE is recomputed)
        if (!shared)
            Add("lm_head.weight", [vocab, dim]);
        if (length < offset)
            throw new CheckpointException(
                $"{_path} is {length} bytes but its header (dim {dim}, n_layers {layers}, vocab {vocab}, seq_len {seqLen}) needs {offset}: " +
                "the file is truncated. Download or export it again.", _path, byteOffset: length);
        if (length > offset)
            throw new CheckpointException(
                $"{_path} is {length} bytes but its header describes {offset}: {length - offset} bytes too many. This is not a legacy " +
                "llama2.c export of that shape (a newer versioned export, or another file).", _path, byteOffset: offset);
        Names = _entries.Keys.Order(StringComparer.Ordinal).ToList();
        var config = new LlamaConfig
        {
            HiddenSize = dim,
            IntermediateSize = hidden,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            VocabSize = vocab,
            RmsNormEps = 1e-5,
            RopeTheta = 10000.0,
            MaxPositionEmbeddings = seqLen,
            TieWordEmbeddings = shared,
            BosTokenId = 1,
            EosTokenId = 2,
        };
        if (ConfigBounds.Violation(config, null) is { } problem)
            throw new CheckpointException($"{_path}: header {problem.Replace("max_position_embeddings", "seq_len")}. Is this a llama2.c legacy .bin file?", _path, byteOffset: 0);
        return config;
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public TensorInfo GetInfo(string name) => Get(name).Info;

    public void ReadFloat32(string name, Span<float> destination)
    {
        var e = Get(name);
        if (destination.Length != e.Info.ElementCount)
            throw new ArgumentException($"'{name}' has {e.Info.ElementCount} elements; the destination holds {destination.Length}.", nameof(destination));
        var read = RandomAccess.Read(_file, MemoryMarshal.AsBytes(destination), e.Offset);
        if (read != destination.Length * 4)
            throw new CheckpointException($"{_path}: short read of '{name}' ({read} of {destination.Length * 4} bytes); the file changed while open.", _path, name, e.Offset);
        if (e.PermuteHeads > 0)
            PermuteRotaryRows(destination, e.PermuteHeads, (int)e.Info.Shape[0], (int)e.Info.Shape[1]);
    }

    public void ReadRaw(string name, Span<byte> destination) =>
        ReadFloat32(name, MemoryMarshal.Cast<byte, float>(destination));

    /// <summary>
    /// HF's permute(w, n_heads, dim1, dim2) = w.view(n_heads, dim1/n_heads/2, 2, dim2).transpose(1, 2).reshape(dim1, dim2):
    /// within each head, row 2i+j (Meta's adjacent pair i) moves to row j·(Dh/2)+i (HF's halves).
    /// </summary>
    internal static void PermuteRotaryRows(Span<float> w, int heads, int rows, int cols)
    {
        var headDim = rows / heads;
        var half = headDim / 2;
        var tmp = ArrayPool<float>.Shared.Rent(headDim * cols);
        try
        {
            for (var h = 0; h < heads; h++)
            {
                var block = w.Slice(h * headDim * cols, headDim * cols);
                block.CopyTo(tmp);
                for (var i = 0; i < half; i++)
                    for (var j = 0; j < 2; j++)
                        tmp.AsSpan((2 * i + j) * cols, cols).CopyTo(block.Slice((j * half + i) * cols, cols));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(tmp);
        }
    }

    private Entry Get(string name) =>
        _entries.TryGetValue(name, out var e) ? e
            : throw new CheckpointException($"{_path}: a llama2.c checkpoint has no tensor '{name}'.", _path, name);

    public void Dispose() => _file.Dispose();
}

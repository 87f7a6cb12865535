using System.Collections.Concurrent;
using Microsoft.ML.OnnxRuntime;
using OnnxReward.Diagnostics;
using OnnxReward.Model;

namespace OnnxReward.Runtime;

/// <summary>
/// The one seam between batching and execution (TEI's Backend): runs one right-padded batch through the fused graph
/// and writes the per-row outputs into caller-owned spans. Thread-safe: concurrent callers each rent a
/// <see cref="RunContext"/> (its own IO binding and pooled buffers), so steady-state runs allocate only a few small
/// OrtValue wrappers per batch and nothing per token.
/// </summary>
public sealed class OrtRewardSession : IRewardBackend
{
    private const string LogCategory = "OnnxReward.Runtime.OrtRewardSession";

    // Legend: B = rows in the batch, T = padded length, K = objectives, D = hidden size.
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly ConcurrentBag<RunContext> _contexts = new();
    private readonly RewardModelManifest _manifest;
    private readonly bool _hasStd;
    private int _disposed;

    private OrtRewardSession(InferenceSession session, RewardModelManifest manifest, string provider)
    {
        _session = session;
        _manifest = manifest;
        Provider = provider;
        _hasStd = manifest.IsArmoRm && manifest.HasPosterior && session.OutputMetadata.ContainsKey("score_std");
        CheckGraphContract();
    }

    /// <summary>The execution provider that runs the graph: <c>CUDA</c> or <c>CPU</c>.</summary>
    public string Provider { get; }

    string IRewardBackend.Name => Provider;
    bool IRewardBackend.HasEmbedding => HasEmbeddingOutput;

    public int Objectives => _manifest.Objectives.Count;
    public int Labels => _manifest.Labels.Count;
    public int HiddenSize => _manifest.HiddenSize;
    public bool HasScoreStd => _hasStd;

    /// <summary>Creates an ONNX Runtime session for an exported graph on the execution provider the options ask for
    /// (no memory-fit check: <see cref="RewardModel.Load"/> makes it first).</summary>
    /// <exception cref="RewardModelException">The graph does not load, or the provider cannot be used.</exception>
    public static OrtRewardSession Create(string graphPath, RewardModelManifest manifest, RewardModelOptions options)
    {
        OrtEnvironment.EnsureQuiet();
        var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (options.IntraOpThreads > 0)
            so.IntraOpNumThreads = options.IntraOpThreads;
        var provider = ChooseProvider(so, manifest, options);
        try
        {
            return new OrtRewardSession(new InferenceSession(graphPath, so), manifest, provider);
        }
        catch (OnnxRuntimeException e)
        {
            throw new RewardModelException(
                $"ONNX Runtime cannot load {graphPath} on the {provider} execution provider: {e.Message.Trim()} " +
                "Re-export the model with `onnxreward export` (a truncated or foreign model.onnx / weights file is the usual cause).", inner: e);
        }
        finally
        {
            so.Dispose();
        }
    }

    private static string ChooseProvider(SessionOptions so, RewardModelManifest manifest, RewardModelOptions options)
    {
        var wantsCuda = options.ExecutionProvider == ExecutionProviderKind.Cuda
                        || (options.ExecutionProvider == ExecutionProviderKind.Auto && manifest.Variant == "cuda");
        if (!wantsCuda)
        {
            if (manifest.Variant == "cuda")
                throw new RewardModelException(
                    $"this model was exported for CUDA ({manifest.DType}) and the CPU execution provider cannot run it. " +
                    "Use ExecutionProvider = Cuda/Auto on a CUDA machine, or export a CPU model with `onnxreward export --dtype fp32`.");
            Log.ExecutionProvider(options.CreateLogger(LogCategory), options.ExecutionProvider == ExecutionProviderKind.Cpu
                ? "CPU (requested)"
                : $"CPU (the model is the {manifest.DType} CPU variant)");
            return "CPU";
        }

        try
        {
            so.AppendExecutionProvider_CUDA(options.DeviceId);
            Log.ExecutionProvider(options.CreateLogger(LogCategory), $"CUDA device {options.DeviceId}");
            return "CUDA";
        }
        catch (Exception e) when (e is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
        {
            var reason = e.Message.Trim();
            if (options.ExecutionProvider == ExecutionProviderKind.Cuda || manifest.Variant == "cuda")
                throw new RewardModelException(
                    $"the CUDA execution provider does not load on this machine ({reason}). It needs CUDA 13 (libcublasLt.so.13, " +
                    "libcudart.so.13) and an NVIDIA driver, and an executable that ships Microsoft.ML.OnnxRuntime.Gpu.Linux. " +
                    (manifest.Variant == "cuda"
                        ? "This model is the CUDA variant; on a machine without CUDA export a CPU model with `onnxreward export --dtype fp32`."
                        : "Use ExecutionProvider = Auto or Cpu to run on the CPU."), inner: e);
            Log.CudaUnavailable(options.CreateLogger(LogCategory), reason);
            return "CPU";
        }
    }

    private void CheckGraphContract()
    {
        var inputs = _session.InputMetadata;
        var outputs = _session.OutputMetadata;
        var needIn = _manifest.IsArmoRm
            ? new[] { "input_ids", "reward_positions", "gating_positions" }
            : new[] { "input_ids", "reward_positions" };
        var needOut = _manifest.IsArmoRm ? new[] { "score", "rewards", "gating" }
            : _manifest.IsClassifier ? new[] { "score", "logits" } : new[] { "embedding" };
        var missing = needIn.Where(n => !inputs.ContainsKey(n)).Select(n => "input " + n)
            .Concat(needOut.Where(n => !outputs.ContainsKey(n)).Select(n => "output " + n)).ToList();
        if (missing.Count > 0)
            throw new RewardModelException(
                $"model.onnx does not match its reward_model.json (kind '{_manifest.Kind}'): missing {string.Join(", ", missing)}. " +
                "The graph and manifest come from different exports; re-export the model directory with `onnxreward export`.");
        if (_manifest.IsArmoRm && outputs["rewards"].Dimensions is [_, var k] && k > 0 && k != _manifest.Objectives.Count)
            throw new RewardModelException(
                $"model.onnx has {k} objectives but reward_model.json names {_manifest.Objectives.Count}. Re-export the model directory.");
    }

    public bool HasEmbeddingOutput => _session.OutputMetadata.ContainsKey("embedding");

    /// <summary>
    /// Runs one batch. Row r holds <paramref name="ids"/>[r] right-padded with the pad id to <paramref name="paddedLength"/>.
    /// Outputs are written row-major: score [B], rewards [B·K], gating [B·K], std [B], embedding [B·D].
    /// A cancellable <paramref name="cancellationToken"/> gets the run its own RunOptions, and cancelling it sets
    /// RunOptions.Terminate, which ONNX Runtime checks between kernels: the run stops within one kernel and this throws
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    public void Run(IReadOnlyList<ReadOnlyMemory<int>> ids, ReadOnlySpan<int> rewardPositions, ReadOnlySpan<int> gatingPositions,
        int paddedLength, RewardOutputs what, in RewardBatchOutputs outputs, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        if (!_contexts.TryTake(out var ctx))
            ctx = new RunContext(_session);
        using var runOptions = cancellationToken.CanBeCanceled ? new RunOptions() : null;
        using var terminate = runOptions is null ? default : cancellationToken.Register(() => runOptions.Terminate = true);
        try
        {
            ctx.Run(this, ids, rewardPositions, gatingPositions, paddedLength, what, outputs, runOptions ?? _runOptions);
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("the run was cancelled (RunOptions.Terminate).", cancellationToken);
        }
        finally
        {
            _contexts.Add(ctx);
        }
        cancellationToken.ThrowIfCancellationRequested();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        while (_contexts.TryTake(out var ctx))
            ctx.Dispose();
        _runOptions.Dispose();
        _session.Dispose();
    }

    /// <summary>One IO binding with pooled input/output buffers; used by one thread at a time.</summary>
    private sealed class RunContext : IDisposable
    {
        private readonly OrtIoBinding _binding;
        private long[] _ids = new long[4096];
        private long[] _rewardPos = new long[64];
        private long[] _gatingPos = new long[64];
        private float[] _score = new float[64];
        private float[] _rewards = new float[64 * 32];
        private float[] _gating = new float[64 * 32];
        private float[] _std = new float[64];
        private float[] _embedding = new float[64 * 512];
        private float[] _logits = new float[64];
        private readonly long[] _shape2 = new long[2];
        private readonly long[] _shape1 = new long[1];

        public RunContext(InferenceSession session) => _binding = session.CreateIoBinding();

        public void Run(OrtRewardSession owner, IReadOnlyList<ReadOnlyMemory<int>> ids, ReadOnlySpan<int> rewardPositions,
            ReadOnlySpan<int> gatingPositions, int t, RewardOutputs what, in RewardBatchOutputs outputs, RunOptions runOptions)
        {
            var b = ids.Count;
            var k = owner.Objectives;
            var d = owner.HiddenSize;
            var pad = owner._manifest.PadTokenId ?? 0;
            Ensure(ref _ids, checked(b * t));
            Ensure(ref _rewardPos, b);
            Ensure(ref _gatingPos, b);

            // input_ids [B, T], right-padded.
            for (var r = 0; r < b; r++)
            {
                var row = _ids.AsSpan(r * t, t);
                var src = ids[r].Span;
                for (var j = 0; j < src.Length; j++)
                    row[j] = src[j];
                row[src.Length..].Fill(pad);
                _rewardPos[r] = rewardPositions[r];
                if (owner._manifest.IsArmoRm)
                    _gatingPos[r] = gatingPositions[r];
            }

            var values = new List<OrtValue>(8);
            try
            {
                _shape2[0] = b; _shape2[1] = t; _shape1[0] = b;
                values.Add(Bind("input_ids", OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _ids.AsMemory(0, b * t), _shape2), input: true));
                values.Add(Bind("reward_positions", OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _rewardPos.AsMemory(0, b), _shape1), input: true));
                if (owner._manifest.IsArmoRm)
                    values.Add(Bind("gating_positions", OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _gatingPos.AsMemory(0, b), _shape1), input: true));

                var labels = owner.Labels;
                if ((what & RewardOutputs.Head) != 0 && owner._manifest.IsClassifier)
                {
                    Ensure(ref _score, b);
                    Ensure(ref _logits, b * labels);
                    values.Add(Bind("score", Output(_score, b, [b]), input: false));
                    values.Add(Bind("logits", Output(_logits, b * labels, [b, labels]), input: false));
                }
                else if ((what & RewardOutputs.Head) != 0)
                {
                    Ensure(ref _score, b);
                    Ensure(ref _rewards, b * k);
                    Ensure(ref _gating, b * k);
                    values.Add(Bind("score", Output(_score, b, [b]), input: false));
                    values.Add(Bind("rewards", Output(_rewards, b * k, [b, k]), input: false));
                    values.Add(Bind("gating", Output(_gating, b * k, [b, k]), input: false));
                    if (owner._hasStd)
                    {
                        Ensure(ref _std, b);
                        values.Add(Bind("score_std", Output(_std, b, [b]), input: false));
                    }
                }
                if ((what & RewardOutputs.Embedding) != 0)
                {
                    Ensure(ref _embedding, b * d);
                    values.Add(Bind("embedding", Output(_embedding, b * d, [b, d]), input: false));
                }

                owner._session.RunWithBinding(runOptions, _binding);

                if ((what & RewardOutputs.Head) != 0 && owner._manifest.IsClassifier)
                {
                    _score.AsSpan(0, b).CopyTo(outputs.Score);
                    _logits.AsSpan(0, b * labels).CopyTo(outputs.Logits);
                }
                else if ((what & RewardOutputs.Head) != 0)
                {
                    _score.AsSpan(0, b).CopyTo(outputs.Score);
                    _rewards.AsSpan(0, b * k).CopyTo(outputs.Rewards);
                    _gating.AsSpan(0, b * k).CopyTo(outputs.Gating);
                    if (owner._hasStd)
                        _std.AsSpan(0, b).CopyTo(outputs.ScoreStd);
                }
                if ((what & RewardOutputs.Embedding) != 0)
                    _embedding.AsSpan(0, b * d).CopyTo(outputs.Embedding);
            }
            finally
            {
                _binding.ClearBoundInputs();
                _binding.ClearBoundOutputs();
                foreach (var v in values)
                    v.Dispose();
            }
        }

        private OrtValue Bind(string name, OrtValue value, bool input)
        {
            if (input)
                _binding.BindInput(name, value);
            else
                _binding.BindOutput(name, value);
            return value;
        }

        private static OrtValue Output(float[] buffer, int length, long[] shape) =>
            OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer.AsMemory(0, length), shape);

        private static void Ensure<T>(ref T[] buffer, int length)
        {
            if (buffer.Length < length)
                buffer = new T[Math.Max(length, buffer.Length * 2)];
        }

        public void Dispose() => _binding.Dispose();
    }
}

/// <summary>Creates the ORT environment once, with warnings silenced (the CUDA probe otherwise prints to stderr).</summary>
internal static class OrtEnvironment
{
    private static int _created;

    public static void EnsureQuiet()
    {
        if (Interlocked.Exchange(ref _created, 1) != 0)
            return;
        try
        {
            var options = new EnvironmentCreationOptions { logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, logId = "onnxreward" };
            OrtEnv.CreateInstanceWithOptions(ref options);
        }
        catch (OnnxRuntimeException)
        {
            // Already created by the host application with its own settings: keep those.
        }
    }
}

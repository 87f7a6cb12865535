namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// A checkpoint file or folder that cannot be read as claimed. The message names the file, the tensor (when one is
/// involved) and what to do; the structured fields carry the same facts for programs.
/// </summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string message, string? file = null, string? tensor = null, long? byteOffset = null,
        Exception? inner = null)
        : base(message, inner)
    {
        File = file;
        Tensor = tensor;
        ByteOffset = byteOffset;
    }

    /// <summary>The file involved, when there is one.</summary>
    public string? File { get; }

    /// <summary>The tensor involved, when there is one.</summary>
    public string? Tensor { get; }

    /// <summary>The byte offset in <see cref="File"/> where the problem was seen, when known.</summary>
    public long? ByteOffset { get; }
}

namespace OnnxReward.Export.Checkpoints;

public sealed partial class Checkpoint
{
    /// <summary>
    /// Opens a Hugging Face checkpoint folder (config.json + safetensors, single or sharded) or a llama2.c legacy
    /// <c>.bin</c> file, validating it against its config. Only safetensors and llama2.c binaries are read: nothing in a
    /// checkpoint is ever executed.
    /// </summary>
    /// <exception cref="CheckpointException">The path or its files are missing, corrupt, or contradict the config; the
    /// message names the file and tensor and what to do.</exception>
    public static Checkpoint Open(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (Directory.Exists(path))
            return HuggingFaceCheckpoint.Open(path);
        if (File.Exists(path))
        {
            var ext = System.IO.Path.GetExtension(path);
            if (ext.Equals(".bin", StringComparison.OrdinalIgnoreCase))
                return Llama2cCheckpoint.Open(path);
            if (ext.Equals(".safetensors", StringComparison.OrdinalIgnoreCase) || System.IO.Path.GetFileName(path) == "config.json")
                return HuggingFaceCheckpoint.Open(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
            throw new CheckpointException(
                $"{path} is neither a checkpoint folder nor a llama2.c .bin file. Pass the Hugging Face folder (with config.json " +
                "and *.safetensors) or a llama2.c legacy .bin file.", path);
        }
        throw new CheckpointException($"{path} does not exist. Pass a Hugging Face checkpoint folder or a llama2.c .bin file.", path);
    }
}

namespace OnnxReward.Testing;

/// <summary>
/// Locates the repository root and the read-only <c>../shared</c> folder beside it. Tests read shared data in place
/// and are skipped (with the reason) only when <c>../shared</c> is absent, e.g. a clone used outside this workplace.
/// </summary>
internal static class SharedData
{
    private static readonly Lazy<string> Root = new(FindRepositoryRoot);

    /// <summary>The repository root (the folder holding OnnxReward.sln).</summary>
    public static string RepositoryRoot => Root.Value;

    /// <summary>The shared folder, or null when absent.</summary>
    public static string? SharedRoot
    {
        get
        {
            var path = Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared"));
            return Directory.Exists(path) ? path : null;
        }
    }

    /// <summary>Path of a file or folder under ../shared; ignores the calling test when ../shared is absent and
    /// fails it when ../shared is there but lacks the file (that is a broken checkout, not a reason to skip).</summary>
    public static string PathOf(params string[] parts)
    {
        var shared = SharedRoot;
        if (shared is null)
            Assert.Ignore($"../shared is absent next to {RepositoryRoot}: this test needs the shared reference data.");
        var path = Path.Combine([shared!, .. parts]);
        if (!File.Exists(path) && !Directory.Exists(path))
            Assert.Fail($"{path} is absent although ../shared exists: restore the shared folder.");
        return path;
    }

    public static string ArmormTiny => PathOf("reference", "armorm-tiny");
    public static string Stories260K => PathOf("reference", "llama2c-stories260k");
    public static string Llama3Tokenizer => PathOf("tokenizers", "llama3");
    public static string SkyworkLlama31Tiny => PathOf("reference", "skywork-llama31-tiny");
    public static string SkyworkQwen3Tiny => PathOf("reference", "skywork-qwen3-tiny");

    /// <summary>A fresh temporary folder, deleted by the caller (or left under /tmp).</summary>
    public static string NewTempDirectory(string prefix = "onnxreward-test")
    {
        var dir = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "OnnxReward.sln")))
                return dir.FullName;
        throw new InvalidOperationException(
            $"OnnxReward.sln not found above {AppContext.BaseDirectory}: run the tests from inside the repository.");
    }
}

namespace OnnxReward.Text.Tokenization;

/// <summary>A tokenizer file that cannot be used; the message names the file, the field and what to do.</summary>
public sealed class TokenizerException : Exception
{
    public TokenizerException(string message, string? file = null, Exception? inner = null) : base(message, inner) => File = file;

    /// <summary>The file involved.</summary>
    public string? File { get; }
}

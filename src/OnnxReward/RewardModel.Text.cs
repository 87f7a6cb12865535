namespace OnnxReward;

public sealed partial class RewardModel
{
    // Conversation → chat template → tokenizer → positions. Filled in once the tokenization layer lands.
    private void InitializeText()
    {
    }

    private void DisposeText()
    {
    }
}

using Google.Protobuf;
using OnnxReward.Export.Onnx;

namespace OnnxReward.Export.Graph;

/// <summary>A tensor in the graph under construction, by its ONNX value name.</summary>
internal readonly record struct Value(string Name)
{
    /// <summary>An omitted optional input (ONNX writes it as the empty name).</summary>
    public static readonly Value None = new("");

    public override string ToString() => Name;
}

/// <summary>A node attribute; build with the static helpers (<c>Attr.Int("axis", -1)</c>).</summary>
internal readonly record struct Attr(AttributeProto Proto)
{
    public static Attr Int(string name, long value) =>
        new(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value });

    public static Attr Float(string name, float value) =>
        new(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value });

    public static Attr Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a.AsAttr();
    }
}

internal static class AttributeProtoExtensions
{
    public static Attr AsAttr(this AttributeProto proto) => new(proto);
}

/// <summary>
/// A weight whose bytes are produced when the model is written, not when the graph is built: the export pipeline
/// streams each one into the external data file in turn (see Exporting/ExternalDataWriter.cs), so building a graph
/// for an 8B checkpoint holds no weights in memory.
/// </summary>
internal sealed record StreamedInitializer(string Name, ElementType Type, long[] Dims, WeightProducer Producer)
{
    public long ElementCount => Dims.Aggregate(1L, (a, d) => checked(a * d));
}

/// <summary>
/// Builds an ONNX graph so that model code reads like the math: <c>var q = g.MatMul(h, wq, "/model/layers.0/attn/q_proj/MatMul")</c>.
/// Node names are paths in the model (onnxruntime-genai's namespace scheme); every node output is named
/// <c>{node name}/output_{i}</c>, so a value in an ORT profile or Netron maps back to the node and the C# line.
/// </summary>
internal sealed class GraphBuilder
{
    private readonly GraphProto _graph = new();
    private readonly List<StreamedInitializer> _streamed = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public GraphBuilder(string name) => _graph.Name = name;

    /// <summary>Weights to stream into the external data file, in graph order.</summary>
    public IReadOnlyList<StreamedInitializer> StreamedInitializers => _streamed;

    /// <summary>Number of nodes so far.</summary>
    public int NodeCount => _graph.Node.Count;

    // ---- graph interface -------------------------------------------------------------------------------------

    /// <summary>A graph input; a dim is a <c>long</c> (fixed) or a <c>string</c> (symbolic, e.g. "batch").</summary>
    public Value Input(string name, ElementType type, params object[] dims)
    {
        Claim(name);
        _graph.Input.Add(ValueInfo(name, type, dims));
        return new Value(name);
    }

    /// <summary>Exposes <paramref name="value"/> as graph output <paramref name="name"/> (through an Identity node
    /// named <c>/outputs/{name}/Identity</c>, so internal names never leak into the I/O contract).</summary>
    public void Output(Value value, string name, ElementType type, params object[] dims)
    {
        Claim(name);
        _graph.Node.Add(new NodeProto { Name = $"/outputs/{name}/Identity", OpType = "Identity", Input = { value.Name }, Output = { name } });
        _graph.Output.Add(ValueInfo(name, type, dims));
    }

    /// <summary>A weight streamed into external data at write time (HF-derived name, e.g. <c>model.norm.weight</c>).</summary>
    public Value Weight(string name, ElementType type, long[] dims, WeightProducer producer)
    {
        Claim(name);
        _streamed.Add(new StreamedInitializer(name, type, dims, producer));
        return new Value(name);
    }

    /// <summary>A small constant stored inside the protobuf (shapes, indices, scalars).</summary>
    public Value Constant(string name, long[] dims, params long[] values)
    {
        Claim(name);
        var t = new TensorProto { Name = name, DataType = ElementType.Int64.OnnxCode() };
        t.Dims.AddRange(dims);
        t.Int64Data.AddRange(values);
        _graph.Initializer.Add(t);
        return new Value(name);
    }

    /// <summary>A small float constant stored inside the protobuf, written as <paramref name="type"/>.</summary>
    public Value Constant(string name, ElementType type, long[] dims, params float[] values)
    {
        Claim(name);
        var t = new TensorProto { Name = name, DataType = type.OnnxCode() };
        t.Dims.AddRange(dims);
        t.RawData = ByteString.CopyFrom(ElementConversion.FromFloat32(values, type));
        _graph.Initializer.Add(t);
        return new Value(name);
    }

    /// <summary>A scalar int64 constant (rank 0).</summary>
    public Value Scalar(string name, long value) => Constant(name, [], value);

    /// <summary>Adds a node; returns its outputs, named <c>{name}/output_{i}</c>.</summary>
    public Value[] Node(string opType, string name, Value[] inputs, int outputs = 1, string domain = "", params Attr[] attributes) =>
        Node(opType, name, inputs, Enumerable.Repeat(true, outputs).ToArray(), domain, attributes);

    /// <summary>Adds a node whose optional outputs with <paramref name="used"/>[i] = false are not produced (written
    /// as ""); their entries in the result are <see cref="Value.None"/>.</summary>
    public Value[] Node(string opType, string name, Value[] inputs, bool[] used, string domain = "", params Attr[] attributes)
    {
        var outputs = used.Length;
        var node = new NodeProto { Name = name, OpType = opType, Domain = domain };
        // Optional inputs in the middle are written as "", trailing ones dropped.
        var count = inputs.Length;
        while (count > 0 && inputs[count - 1].Name.Length == 0) count--;
        for (var i = 0; i < count; i++) node.Input.Add(inputs[i].Name);
        var result = new Value[outputs];
        for (var i = 0; i < outputs; i++)
        {
            if (!used[i])
            {
                node.Output.Add("");
                result[i] = Value.None;
                continue;
            }
            var output = $"{name}/output_{i}";
            Claim(output);
            node.Output.Add(output);
            result[i] = new Value(output);
        }
        foreach (var a in attributes) node.Attribute.Add(a.Proto);
        _graph.Node.Add(node);
        return result;
    }

    private Value One(string opType, string name, Value[] inputs, string domain = "", params Attr[] attributes) =>
        Node(opType, name, inputs, 1, domain, attributes)[0];

    // ---- operators (ai.onnx unless noted) ---------------------------------------------------------------------

    public Value MatMul(Value a, Value b, string name) => One("MatMul", name, [a, b]);
    public Value Add(Value a, Value b, string name) => One("Add", name, [a, b]);
    public Value Sub(Value a, Value b, string name) => One("Sub", name, [a, b]);
    public Value Mul(Value a, Value b, string name) => One("Mul", name, [a, b]);
    public Value Div(Value a, Value b, string name) => One("Div", name, [a, b]);
    public Value Neg(Value a, string name) => One("Neg", name, [a]);
    public Value Sqrt(Value a, string name) => One("Sqrt", name, [a]);
    public Value Relu(Value a, string name) => One("Relu", name, [a]);
    public Value Sigmoid(Value a, string name) => One("Sigmoid", name, [a]);
    public Value Softmax(Value a, long axis, string name) => One("Softmax", name, [a], "", Attr.Int("axis", axis));
    public Value Cast(Value a, ElementType to, string name) => One("Cast", name, [a], "", Attr.Int("to", to.OnnxCode()));
    public Value Shape(Value a, string name) => One("Shape", name, [a]);
    public Value Reshape(Value a, Value shape, string name) => One("Reshape", name, [a, shape]);
    public Value Expand(Value a, Value shape, string name) => One("Expand", name, [a, shape]);
    public Value Unsqueeze(Value a, Value axes, string name) => One("Unsqueeze", name, [a, axes]);
    public Value Concat(Value[] parts, long axis, string name) => One("Concat", name, parts, "", Attr.Int("axis", axis));
    public Value Gather(Value data, Value indices, long axis, string name) => One("Gather", name, [data, indices], "", Attr.Int("axis", axis));
    public Value GatherND(Value data, Value indices, long batchDims, string name) =>
        One("GatherND", name, [data, indices], "", Attr.Int("batch_dims", batchDims));
    public Value Slice(Value data, Value starts, Value ends, Value axes, string name) => One("Slice", name, [data, starts, ends, axes]);
    public Value ReduceSum(Value a, Value axes, bool keepDims, string name) =>
        One("ReduceSum", name, [a, axes], "", Attr.Int("keepdims", keepDims ? 1 : 0));
    public Value[] Split(Value a, Value sizes, long axis, int outputs, string name) =>
        Node("Split", name, [a, sizes], outputs, "", Attr.Int("axis", axis));

    /// <summary>y = a · bᵀ + c (transB = 1 keeps the Hugging Face [out, in] layout of a Linear weight).</summary>
    public Value GemmTransB(Value a, Value b, Value c, string name) => One("Gemm", name, [a, b, c], "", Attr.Int("transB", 1));

    /// <summary>RMSNorm: x · rsqrt(mean(x²) + eps) · γ over the last axis (ORT contrib op registered in ai.onnx).</summary>
    public Value SimplifiedLayerNorm(Value x, Value gamma, float epsilon, string name) =>
        One("SimplifiedLayerNormalization", name, [x, gamma], "",
            Attr.Int("axis", -1), Attr.Float("epsilon", epsilon), Attr.Int("stash_type", 1));

    /// <summary>s = x + skip; returns (RMSNorm(s) · γ, s) in one kernel (com.microsoft SkipSimplifiedLayerNormalization).</summary>
    public (Value Normed, Value Sum) SkipSimplifiedLayerNorm(Value x, Value skip, Value gamma, float epsilon, string name)
    {
        var o = Node("SkipSimplifiedLayerNormalization", name, [x, skip, gamma], [true, false, false, true], MsDomain,
            Attr.Float("epsilon", epsilon));
        return (o[0], o[3]);
    }

    public const string MsDomain = "com.microsoft";

    // ---- serialization ----------------------------------------------------------------------------------------

    /// <summary>The ModelProto; <paramref name="initializers"/> are the streamed weights as written (external refs).</summary>
    public ModelProto ToModel(IEnumerable<TensorProto> initializers, string producerVersion, IReadOnlyDictionary<string, string> metadata)
    {
        var graph = _graph.Clone();
        graph.Initializer.AddRange(initializers);
        var model = new ModelProto
        {
            IrVersion = 10,
            ProducerName = "OnnxReward.Export",
            ProducerVersion = producerVersion,
            Graph = graph,
            OpsetImport =
            {
                new OperatorSetIdProto { Domain = "", Version = 21 },
                new OperatorSetIdProto { Domain = MsDomain, Version = 1 },
            },
        };
        foreach (var (k, v) in metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }

    private void Claim(string name)
    {
        if (!_names.Add(name))
            throw new InvalidOperationException($"ONNX value name '{name}' is defined twice; every node name in the graph builder must be unique.");
    }

    private static ValueInfoProto ValueInfo(string name, ElementType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d switch
            {
                string p => new TensorShapeProto.Types.Dimension { DimParam = p },
                long v => new TensorShapeProto.Types.Dimension { DimValue = v },
                int v => new TensorShapeProto.Types.Dimension { DimValue = v },
                _ => throw new ArgumentException($"dimension {d} must be a long or a string"),
            });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = type.OnnxCode(), Shape = shape } },
        };
    }
}

// AU values from `aunets run --osc 127.0.0.1:9000` (or `aunets serve --osc ...`): a minimal OSC 1.0 receiver in
// plain C# (no packages), so it runs in Unity (see AUNetsOscReceiver.cs) and in any .NET program.
//
// It listens on a UDP port on a background thread and keeps, per AU ("AU12"), the latest values of the
// /aunets/au/AUxx message (smoothed probability, state, raw probability, intensity, track), and queues the
// /aunets/event/AUxx onsets and offsets. docs/events.md lists every address.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;

public sealed class AUValues
{
    public float Smoothed;     // 0..1, after calibration and the sliding median
    public int State;          // 0/1, the on/off state
    public float Probability;  // 0..1, raw
    public float Intensity;    // 0..5, -1 when the engine has none
    public int Track;          // the face's track id
}

public sealed class AUEvent
{
    public string AU;          // "AU12"
    public string Type;        // "onset" or "offset"
    public int Track;
    public float PeakProbability;
    public float DurationS;
}

public sealed class AUNetsOsc : IDisposable
{
    readonly UdpClient udp;
    readonly Thread thread;
    volatile bool running = true;
    readonly ConcurrentDictionary<string, AUValues> latest = new ConcurrentDictionary<string, AUValues>();
    public readonly ConcurrentQueue<AUEvent> Events = new ConcurrentQueue<AUEvent>();
    public int Messages;

    public AUNetsOsc(int port)
    {
        udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, port));
        thread = new Thread(Receive) { IsBackground = true, Name = "aunets-osc" };
        thread.Start();
    }

    public int Port => ((IPEndPoint)udp.Client.LocalEndPoint).Port;

    // The latest values of an AU ("AU12"), or null before its first message.
    public AUValues Get(string au) => latest.TryGetValue(au, out var v) ? v : null;

    void Receive()
    {
        var from = new IPEndPoint(IPAddress.Any, 0);
        while (running)
        {
            byte[] packet;
            try { packet = udp.Receive(ref from); }
            catch (SocketException) { return; }
            catch (ObjectDisposedException) { return; }
            Handle(packet);
        }
    }

    // One OSC message: address, type tags, then big-endian int32 / float32 / padded strings.
    public void Handle(byte[] p)
    {
        int i = 0;
        string address = ReadString(p, ref i);
        string tags = ReadString(p, ref i);
        var args = new List<object>();
        foreach (char t in tags.Substring(1))
        {
            if (t == 'i') { args.Add(ReadInt(p, ref i)); }
            else if (t == 'f') { args.Add(BitConverter.Int32BitsToSingle(ReadInt(p, ref i))); }
            else if (t == 's') { args.Add(ReadString(p, ref i)); }
            else return; // not sent by aunets
        }
        Interlocked.Increment(ref Messages);
        if (address.StartsWith("/aunets/au/") && args.Count == 5)
        {
            latest[address.Substring(11)] = new AUValues {
                Smoothed = (float)args[0], State = (int)args[1], Probability = (float)args[2],
                Intensity = (float)args[3], Track = (int)args[4] };
        }
        else if (address.StartsWith("/aunets/event/") && args.Count == 4)
        {
            Events.Enqueue(new AUEvent {
                AU = address.Substring(14), Type = (string)args[0], Track = (int)args[1],
                PeakProbability = (float)args[2], DurationS = (float)args[3] });
        }
    }

    static string ReadString(byte[] p, ref int i)
    {
        int end = Array.IndexOf(p, (byte)0, i);
        string s = Encoding.ASCII.GetString(p, i, end - i);
        i = (end + 4) & ~3; // the terminating zero, then padding to a multiple of 4
        return s;
    }

    static int ReadInt(byte[] p, ref int i)
    {
        int v = (p[i] << 24) | (p[i + 1] << 16) | (p[i + 2] << 8) | p[i + 3];
        i += 4;
        return v;
    }

    public void Dispose()
    {
        running = false;
        udp.Close();
    }
}

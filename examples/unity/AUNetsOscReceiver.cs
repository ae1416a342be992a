// Unity: drop AUNetsOsc.cs and this script into Assets/, add this component to a GameObject, then run
// `aunets run 0 --osc 127.0.0.1:9000`. The inspector shows AU12 live; onsets are logged to the console.
// Other scripts read `receiver.Osc.Get("AU06")?.Smoothed` and so on.
using UnityEngine;

public class AUNetsOscReceiver : MonoBehaviour
{
    public int port = 9000;
    public string au = "AU12";
    [Range(0, 1)] public float smoothed;
    public bool on;

    public AUNetsOsc Osc { get; private set; }

    void OnEnable() { Osc = new AUNetsOsc(port); }

    void Update()
    {
        var v = Osc.Get(au);
        if (v != null) { smoothed = v.Smoothed; on = v.State == 1; }
        while (Osc.Events.TryDequeue(out var e))
        {
            Debug.Log($"{e.AU} {e.Type} (track {e.Track}, peak {e.PeakProbability:F2})");
        }
    }

    void OnDisable() { Osc?.Dispose(); Osc = null; }
}

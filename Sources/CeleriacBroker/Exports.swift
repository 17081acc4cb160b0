// The ports speak the message vocabulary of CeleriacWire; importing the ports brings it along.
@_exported import CeleriacWire
